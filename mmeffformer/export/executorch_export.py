"""ExecuTorch programs (``.pte``) for XNNPACK, the CPU backend of ExecuTorch on Android, iOS
and desktop: a backbone or a whole segmentor through ``torch.export`` with height and width
free up to a bound, optionally quantized to INT8 with XNNPACK's PT2E quantizer, lowered to
XNNPACK.

ExecuTorch plans its memory for the largest input, so a program has an upper bound on
height and width (``max_shape``); it runs every size from :data:`MIN_SIDE` up to it. The
program carries two constant methods beside ``forward``: ``mmeffformer_metadata`` (the
model's description as UTF-8 JSON bytes, what ``read_metadata`` gives for ONNX files) and
``max_shape`` (``[height, width]``), so a runtime can refuse a file of another model and a
size above the bound (ExecuTorch itself does not check it).
"""

from __future__ import annotations

import json
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

EXTRA = "pip install 'mmeffformer[mobile]'"
#: the smallest side a program serves (the stride-32 map must be larger than 1 x 1)
MIN_SIDE = 96
METADATA_METHOD, BOUND_METHOD = 'mmeffformer_metadata', 'max_shape'


def import_executorch():
    """ExecuTorch's export entry points; a missing package names the extra."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as error:
        raise ImportError(
            f'ExecuTorch export needs the executorch package; install the mobile extra: {EXTRA}'
        ) from error
    return to_edge_transform_and_lower, XnnpackPartitioner


SCALAR_FORMS = {
    torch.ops.aten.add.Tensor: torch.ops.aten.add.Scalar,
    torch.ops.aten.mul.Tensor: torch.ops.aten.mul.Scalar,
}


def _xnnpack_quantizer():
    """XNNPACK's PT2E quantizer (symmetric, per-channel weights) for our graphs.

    Before annotating, XNNPACK's quantizer turns the number of every ``add`` / ``mul`` into
    a float32 tensor; on integer arithmetic (the attention-bias index computed from the
    grid sizes) that makes the index float, and the lookup fails. Those integer nodes take
    the ``.Scalar`` overloads (the same arithmetic), which the transform leaves alone;
    :func:`_quantized` gives them back their ``.Tensor`` form, the one ExecuTorch takes.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class Quantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            for node in model.graph.nodes:
                value = node.meta.get('val')
                if (
                    node.target in SCALAR_FORMS
                    and isinstance(value, torch.Tensor)
                    and not value.dtype.is_floating_point
                    and len(node.args) == 2
                    and isinstance(node.args[0], torch.fx.Node)
                    and isinstance(node.args[1], (int, float))
                ):
                    node.target = SCALAR_FORMS[node.target]
            model.recompile()
            return super().transform_for_annotation(model)

    quantizer = Quantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    return quantizer


def _quantized(graph, images: Sequence[torch.Tensor]):
    """``graph`` (an exported program) quantized to INT8 by XNNPACK's PT2E quantizer,
    calibrated on ``images``: a module to export again."""
    from mmeffformer.quantization.pytorch_int8 import import_pt2e

    quantize_pt2e, _ = import_pt2e()
    prepared = quantize_pt2e.prepare_pt2e(graph.module(), _xnnpack_quantizer())
    for image in images:
        prepared(image)
    converted = quantize_pt2e.convert_pt2e(prepared)
    tensor_forms = {scalar: tensor for tensor, scalar in SCALAR_FORMS.items()}
    for node in converted.graph.nodes:
        node.target = tensor_forms.get(node.target, node.target)
    converted.recompile()
    return converted


def export_executorch(
    module: nn.Module,
    out: str,
    example_size: Tuple[int, int],
    max_shape: Tuple[int, int],
    metadata: Dict[str, str],
    int8_images: Optional[Sequence[torch.Tensor]] = None,
) -> None:
    """Write ``out``: ``module`` (eval mode, one image in) lowered to XNNPACK, heights from
    :data:`MIN_SIDE` to ``max_shape[0]`` and widths to ``max_shape[1]``; INT8 when given
    calibration images (``(1, C, H, W)`` each)."""
    from torch.export import Dim

    if not str(out).endswith('.pte'):
        raise ValueError(f'an ExecuTorch program is a .pte file, got {out!r}')
    for name, side, bound in zip(('height', 'width'), example_size, max_shape):
        if not MIN_SIDE <= side <= bound:
            raise ValueError(
                f'the example {name} {side} must lie in [{MIN_SIDE}, {bound}] (the bound of '
                '--max-shape)'
            )
    lower, partitioner = import_executorch()
    sizes = (
        {
            2: Dim('height', min=MIN_SIDE, max=int(max_shape[0])),
            3: Dim('width', min=MIN_SIDE, max=int(max_shape[1])),
        },
    )
    example = (torch.rand(1, 3, *example_size),)
    with torch.no_grad():
        graph = torch.export.export(module, example, dynamic_shapes=sizes)
        if int8_images is not None:
            graph = torch.export.export(
                _quantized(graph, int8_images), example, dynamic_shapes=sizes
            )
    text = json.dumps(metadata, sort_keys=True).encode('utf-8')
    constants = {
        METADATA_METHOD: torch.tensor(list(text), dtype=torch.uint8),
        BOUND_METHOD: [int(max_shape[0]), int(max_shape[1])],
    }
    program = lower(graph, partitioner=[partitioner()], constant_methods=constants)
    with open(out, 'wb') as file:
        file.write(program.to_executorch().buffer)
