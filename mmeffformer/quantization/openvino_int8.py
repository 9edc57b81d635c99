"""INT8 OpenVINO IR from an exported file: NNCF post-training quantization on the OpenVINO
model read from the ONNX file, height and width kept free."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from mmeffformer.runtimes.signal_stack import kept_signal_stack

from .accuracy_control import AccuracyControl

EXTRA = "pip install 'mmeffformer[quantize]'"
PRESETS = ('mixed', 'performance')
#: what stays float. The attention-bias lookups (Gathers of a learnt table by constant
#: indices) cannot be quantized by NNCF (it fails on them for V1 and V2). V2's attention
#: query and key convolutions: quantized with the rest of its attention input, the v2-s0
#: backbone's stride-16 and stride-32 features came out wrong (error 1.0 of the largest
#: value, `python -m benchmarks numeric_error --int8`); with these two float, 0.03 and 0.17
#: at 800x1216, 0.04 and 0.05 at 256x384. NMS,
#: RoIAlign and the box decoding stay float because NNCF's OpenVINO backend does not
#: quantize them.
FLOAT_SCOPE: Dict[str, List[str]] = dict(patterns=['.*/attn/bias/.*', '.*/attn/(q|k)/.*'])
METADATA_SECTION = 'mmeffformer'


def _import_nncf():
    try:
        import nncf
    except ImportError as error:
        raise ImportError(
            f'INT8 quantization needs NNCF; install the quantization extra: {EXTRA}'
        ) from error
    return nncf


def quantize_openvino(
    onnx_file: str,
    inputs: Sequence[np.ndarray],
    out: str,
    preset: str = 'mixed',
    metadata: Dict[str, str] | None = None,
    accuracy: AccuracyControl | None = None,
) -> None:
    """Write ``out`` (an OpenVINO ``.xml`` IR): ``onnx_file`` quantized to INT8, calibrated on
    ``inputs`` (the arrays the file is fed), with ``metadata`` kept in its runtime info.
    With ``accuracy``, NNCF keeps in float what it must for the config's metric on the val
    set to drop by at most ``accuracy.max_drop`` points."""
    if preset not in PRESETS:
        raise ValueError(f'preset must be one of {PRESETS}, got {preset!r}')
    if not str(out).endswith('.xml'):
        raise ValueError(f'an OpenVINO IR is an .xml file (with its .bin beside it), got {out!r}')
    if not inputs:
        raise ValueError('no calibration inputs')
    nncf = _import_nncf()
    import openvino as ov

    model = ov.Core().read_model(onnx_file)
    settings = dict(
        preset=getattr(nncf.QuantizationPreset, preset.upper()),
        subset_size=len(inputs),
        ignored_scope=nncf.IgnoredScope(**FLOAT_SCOPE, validate=False),
    )
    calibration = nncf.Dataset(list(inputs), lambda image: {'image': image})
    with kept_signal_stack():  # NNCF compiles models with OpenVINO
        if accuracy is None:
            quantized = nncf.quantize(model, calibration, **settings)
        else:
            quantized = nncf.quantize_with_accuracy_control(
                model,
                calibration,
                nncf.Dataset(accuracy.items, accuracy.metric.inputs),
                accuracy.metric,
                max_drop=accuracy.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                **settings,
            )
    for key, value in (metadata or {}).items():
        quantized.set_rt_info(str(value), [METADATA_SECTION, key])
    quantized.set_rt_info('int8', [METADATA_SECTION, 'precision'])
    ov.save_model(quantized, out, compress_to_fp16=False)


def read_ir_metadata(path: str) -> Dict[str, str]:
    """The ``mmeffformer`` runtime info of an OpenVINO IR (empty for other files)."""
    import openvino as ov

    model = ov.Core().read_model(path)
    if not model.has_rt_info([METADATA_SECTION]):
        return {}
    section = model.get_rt_info([METADATA_SECTION])
    values = section.astype(dict) if hasattr(section, 'astype') else dict(section)
    return {str(k): str(v.astype(str) if hasattr(v, 'astype') else v) for k, v in values.items()}
