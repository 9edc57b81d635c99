"""INT8 in PyTorch: the backbone and neck of a deploy-mode detector or segmentor quantized
with PT2E (torchao's X86 Inductor quantizer), saved as one ``.pt2`` file, and served
compiled by Inductor in place of the float backbone and neck.

The ``.pt2`` holds the quantized program (``torch.export``, height and width free), the
heads' float weights and the model's description, so ``tools/test.py CONFIG FILE.pt2``
needs nothing else and refuses a file of another model. The heads stay float32: RoIAlign,
box decoding, NMS and mask pasting run as in PyTorch.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn

from mmeffformer.utils.image_dims import image_dims

EXTRA = "pip install 'mmeffformer[quantize]'"
#: names of the ``.pt2`` file's extra files
DESCRIPTION, HEADS = 'mmeffformer.json', 'mmeffformer_heads.pth'
#: the parts of the model the program replaces
FEATURE_PARTS = ('backbone', 'neck')
#: the largest height and width a program serves
MAX_SIDE = 8192


def import_pt2e():
    """torchao's PT2E entry points (torch >= 2.10 no longer ships the quantizers)."""
    # torchao reports CUDA-only kernels it cannot load on a CPU machine; not our concern
    logging.getLogger('torchao').setLevel(logging.ERROR)
    try:
        from torchao.quantization.pt2e import quantize_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError as error:
        raise ImportError(
            f'INT8 in PyTorch needs torchao; install the quantization extra: {EXTRA}'
        ) from error
    return quantize_pt2e, x86_inductor_quantizer


class FeatureExtractor(nn.Module):
    """A detector's or segmentor's backbone followed by its neck: the features its heads read."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.neck = getattr(model, 'neck', None)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = self.backbone(image)
        if self.neck is not None:
            features = self.neck(features)
        return tuple(features)


class QuantizedFeatures(nn.Module):
    """The quantized program in place of a backbone (its neck becomes ``nn.Identity``).

    ``compile=True`` (what runs fast): compiled by Inductor with its weights frozen, on the
    first call at a size (a second size compiles one graph for every size); ``False``: the
    program as it is, quantize / dequantize steps in float (the same numbers, slowly).
    """

    def __init__(self, program: nn.Module, compile: bool = True) -> None:
        super().__init__()
        self.program = program
        self.compiled = torch.compile(program, options={'freezing': True}) if compile else None

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        from torch._inductor import config

        image = image.float().contiguous()
        # the program is traced in float32 with its own INT8 steps: a caller's autocast (a
        # config's bf16 test loop) would hand its ops bf16 tensors it does not take
        with torch.no_grad(), torch.autocast(image.device.type, enabled=False):
            if self.compiled is None:
                return tuple(self.program(image))
            # dynamo makes the weights graph constants only with the global flag set (see
            # mmeffformer.models.deploy_mode.compile_frozen); Inductor then folds the
            # quantized weights into its INT8 convolutions and matmuls
            with config.patch(freezing=True):
                return tuple(self.compiled(image))

    def train(self, mode: bool = True) -> QuantizedFeatures:
        # an exported program has no training mode (it refuses train() and eval())
        self.training = mode
        return self


def _head_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {
        key: value
        for key, value in model.state_dict().items()
        if key.split('.')[0] not in FEATURE_PARTS
    }


def quantize_module(module: nn.Module, images: Sequence[torch.Tensor]):
    """``module`` (eval mode, one image in, tensors out) through ``torch.export`` with free
    height and width, quantized to INT8 by PT2E (torchao's X86 Inductor quantizer, default
    recipe) and calibrated on ``images``: the exported program."""
    if not images:
        raise ValueError('no calibration images')
    quantize_pt2e, x86 = import_pt2e()
    example = images[0]
    # height and width free: one program serves every size the float model serves
    sizes = image_dims((MAX_SIDE, MAX_SIDE))
    with torch.no_grad():
        graph = torch.export.export(module, (example,), dynamic_shapes=sizes)
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = quantize_pt2e.prepare_pt2e(graph.module(), quantizer)
        for image in images:
            prepared(image)
        converted = quantize_pt2e.convert_pt2e(prepared)
        return torch.export.export(converted, (example,), dynamic_shapes=sizes)


def quantize_pytorch(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    out: str,
    description: Dict[str, str],
) -> None:
    """Write ``out`` (``.pt2``): ``model``'s backbone and neck (deploy mode, eval) quantized
    to INT8 by :func:`quantize_module`, calibrated on ``images`` (the ``(1, C, H, W)``
    batches its backbone is fed), with its heads' weights and ``description`` beside the
    program."""
    if not str(out).endswith('.pt2'):
        raise ValueError(f'a PyTorch INT8 program is a .pt2 file, got {out!r}')
    program = quantize_module(FeatureExtractor(model).eval(), images)
    heads = io.BytesIO()
    torch.save(_head_state(model), heads)
    # a .pt2's extra files are text
    extra = {
        DESCRIPTION: json.dumps(description, sort_keys=True),
        HEADS: base64.b64encode(heads.getvalue()).decode('ascii'),
    }
    torch.export.save(program, out, extra_files=extra)


def read_pt2_description(path: str) -> Dict[str, str]:
    """The model description saved in a ``.pt2`` of :func:`quantize_pytorch` (empty for
    other programs)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f'extra/{DESCRIPTION}')]
        return json.loads(archive.read(names[0])) if names else {}


def use_quantized_features(model: nn.Module, path: str, compile: bool = True) -> None:
    """Load the ``.pt2`` of :func:`quantize_pytorch` into ``model`` (built from the same
    config): its heads get the file's weights, its backbone and neck become the program
    (:class:`QuantizedFeatures`, compiled unless ``compile=False``)."""
    import_pt2e()  # the program's quantized ops are registered by torchao
    extra = {HEADS: ''}  # the description is checked before, by read_pt2_description
    program = torch.export.load(path, extra_files=extra)
    state = torch.load(io.BytesIO(base64.b64decode(extra[HEADS])), map_location='cpu')
    expected = _head_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: the heads' weights do not fit the config's model "
            f'(missing {missing[:5]}, unexpected {unexpected[:5]})'
        )
    model.load_state_dict(state, strict=False)
    model.backbone = QuantizedFeatures(program.module(), compile)
    if getattr(model, 'neck', None) is not None:
        model.neck = nn.Identity()
