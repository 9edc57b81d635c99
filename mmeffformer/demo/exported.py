"""The demo's deployment step: the trained models exported and evaluated in each runtime.

Each trained model is exported once (deploy mode, whole model, free height and width)
and run through the config's own test loop and metric, in PyTorch and in every runtime,
so the rows differ only in what computes the outputs; where the quantization extra is
installed, the model is also quantized to INT8 as tools/quantize.py does, and evaluated in
OpenVINO (the file, by NNCF) and in PyTorch (backbone and neck, by PT2E); on request
(``tools/demo.py --executorch``) it is also written as ExecuTorch programs (fp32, and INT8
with the quantization extra) as tools/export_executorch.py --part model writes them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Dict, List, Sequence

from mmengine.runner import Runner

from mmeffformer.engine import loop_autocasts
from mmeffformer.export import export_onnx, exportable
from mmeffformer.models import switch_to_deploy
from mmeffformer.runtimes import exported_model_cfg

#: metric keys of each task -> the demo's names (and the scale to percent)
METRICS = {
    'mmdet': {'box/bbox_mAP': ('box AP', 100.0), 'mask/segm_mAP': ('mask AP', 100.0)},
    'mmseg': {'mIoU': ('mIoU', 1.0)},
}
TRACE_SIZE = (160, 160)
#: the largest image an ExecuTorch program of the demo serves: the demo's test size (160) and
#: the larger test scales docs/demo.md evaluates at
EXECUTORCH_BOUND = (320, 320)


def timed_test(runner: Runner) -> tuple:
    """``(metrics, seconds per image)`` of one run of the runner's test loop."""
    start = time.perf_counter()
    metrics = runner.test()
    return metrics, (time.perf_counter() - start) / len(runner.test_dataloader.dataset)


def evaluate_exported(
    model_name: str,
    runner: Runner,
    out: Path,
    backends: Sequence[str],
    int8_images: int = 0,
    compile_int8: bool = True,
    executorch: bool = False,
) -> List[Dict[str, object]]:
    """Rows of backend, precision, metrics and seconds per image for one trained model;
    with ``int8_images``, also its INT8 IR in OpenVINO and its INT8 PyTorch program (compiled
    by Inductor unless ``compile_int8=False``), calibrated on that many (at most) training
    images; with ``executorch``, its ExecuTorch programs (fp32, and INT8 with
    ``int8_images``)."""
    cfg = runner.cfg
    scope = cfg.default_scope
    names = METRICS[scope]

    def row(backend: str, precision: str, metrics: dict, seconds: float) -> dict:
        values = {label: scale * float(metrics[key]) for key, (label, scale) in names.items()}
        return dict(model=model_name, backend=backend, precision=precision,
                    metrics=values, ms_per_image=1000 * seconds)  # fmt: skip

    # PyTorch: the trained runner's own test loop (bf16 autocast where it trained in bf16)
    autocast = loop_autocasts(cfg.get('test_cfg'))
    rows = [row('pytorch', 'bf16 autocast' if autocast else 'fp32', *timed_test(runner))]
    deployed = switch_to_deploy(copy.deepcopy(runner.model).float().eval(), sizes=[TRACE_SIZE])
    name = Path(cfg.work_dir).name
    path = str(out / f'{name}.onnx')
    export_onnx(exportable(deployed, scope, 'model'), path, TRACE_SIZE)
    files = [(backend, path, backend) for backend in backends]
    if int8_images:
        xml = str(out / f'{name}_int8.xml')
        quantize_file(cfg, path, xml, int8_images)
        files.append(('openvino', xml, 'openvino_int8'))
    if executorch:
        for count in [0] + ([int8_images] if int8_images else []):
            pte = str(out / f'{name}_{"int8" if count else "fp32"}.pte')
            write_program(cfg, deployed, pte, count)
            files.append(('executorch', pte, f'executorch_{"int8" if count else "fp32"}'))
    for backend, file, label in files:
        exported = exported_cfg(cfg, out / f'{name}_{label}', name)
        exported.model = exported_model_cfg(cfg.model, scope, file, backend=backend)
        test_runner = Runner.from_cfg(exported)
        precision = 'int8' if file.endswith('.xml') else test_runner.model.runtime.precision
        rows.append(row(backend, precision, *timed_test(test_runner)))
    if int8_images:
        from mmeffformer.quantization import use_quantized_features

        pt2 = str(out / f'{name}_int8.pt2')
        quantize_program(cfg, deployed, pt2, int8_images)
        test_runner = Runner.from_cfg(exported_cfg(cfg, out / f'{name}_pytorch_int8', name))
        use_quantized_features(test_runner.model, pt2, compile=compile_int8)
        rows.append(row('pytorch', 'int8', *timed_test(test_runner)))
    return rows


def exported_cfg(cfg, work_dir: Path, name: str):
    """The trained config for a test run of an exported or quantized form of its model."""
    exported = copy.deepcopy(cfg)
    exported.test_cfg = dict(type='TestLoop')
    exported.work_dir = str(work_dir)
    exported.load_from = None
    exported.experiment_name = f'{name}_{work_dir.name}_{time.time_ns()}'
    return exported


def quantize_program(cfg, deployed, pt2: str, num_images: int) -> None:
    """The deploy-mode model's backbone and neck quantized by PT2E as tools/quantize.py
    --backend pytorch does, calibrated on up to ``num_images`` training images."""
    from mmeffformer.export import describe
    from mmeffformer.quantization import calibration_batches, quantize_pytorch

    batches = calibration_batches(cfg, num_images, 'train', at_most=True)
    description = describe(exportable(deployed, cfg.default_scope, 'model'))
    quantize_pytorch(deployed, [image for image, _ in batches], pt2, description)


def quantize_file(cfg, onnx_file: str, xml: str, num_images: int) -> None:
    """``onnx_file`` quantized to INT8 as tools/quantize.py does, calibrated on up to
    ``num_images`` training images."""
    from mmeffformer.export import read_metadata
    from mmeffformer.quantization import calibration_inputs, quantize_openvino

    inputs = calibration_inputs(cfg, num_images, 'train', at_most=True)
    quantize_openvino(onnx_file, inputs, xml, metadata=read_metadata(onnx_file))


def write_program(cfg, deployed, pte: str, num_images: int) -> None:
    """The deploy-mode model as the ExecuTorch program tools/export_executorch.py --part model
    writes (bound :data:`EXECUTORCH_BOUND`); INT8 when ``num_images``, calibrated on up to that
    many training images."""
    import torch

    from mmeffformer.export.executorch_export import export_program
    from mmeffformer.quantization import calibration_inputs

    images = None
    if num_images:
        inputs = calibration_inputs(cfg, num_images, 'train', at_most=True)
        images = [torch.from_numpy(array) for array in inputs]
    module = exportable(deployed, cfg.default_scope, 'model').eval()
    export_program(module, pte, TRACE_SIZE, EXECUTORCH_BOUND, cfg, images)
