"""ExecuTorch programs (``.pte``) for XNNPACK, the CPU backend of ExecuTorch on Android, iOS
and desktop: a backbone, a whole segmentor or a detector's networks through ``torch.export``
with height and width free up to a bound, optionally quantized to INT8 with XNNPACK's PT2E
quantizer, lowered to XNNPACK.

ExecuTorch plans its memory for the largest input, so a program has an upper bound on
height and width (``max_shape``); it runs every size from :data:`MIN_SIDE` up to it. The
program carries two constant methods beside ``forward``: the model's description as UTF-8
JSON bytes (what ``read_metadata`` gives for ONNX files) and ``[height, width]`` of the
bound, so a runtime can refuse a file of another model and a size above the bound
(ExecuTorch itself does not check it). A detector's program holds its networks only: see
:func:`export_executorch_detector`.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmeffformer.models.graphs.detector_graph import DetectorGraph, pad_to_divisor
from mmeffformer.runtimes.program_constants import (
    BOUND_METHOD,
    HEAD_LOGITS,
    METADATA_METHOD,
    MODEL_CFG_METHOD,
    json_constant,
)
from mmeffformer.runtimes.program_detector import DetectorTrunk, roi_heads
from mmeffformer.utils.image_dims import MIN_SIDE, image_dims

EXTRA = "pip install 'mmeffformer[mobile]'"


def import_executorch():
    """ExecuTorch's export entry points; a missing package names the extra."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    except ImportError as error:
        raise ImportError(
            f'ExecuTorch export needs the executorch package; install the mobile extra: {EXTRA}'
        ) from error
    return to_edge_transform_and_lower, XnnpackPartitioner, EdgeCompileConfig


SCALAR_FORMS = {
    torch.ops.aten.add.Tensor: torch.ops.aten.add.Scalar,
    torch.ops.aten.mul.Tensor: torch.ops.aten.mul.Scalar,
}


def _in_modules(node: torch.fx.Node, prefixes: Sequence[str]) -> bool:
    """Whether ``node`` was traced inside a submodule whose path starts with a prefix."""
    stack = node.meta.get('nn_module_stack') or {}
    return any(str(path).startswith(prefixes) for path, _ in stack.values())


def _xnnpack_quantizer(float_modules: Sequence[str] = ()):
    """XNNPACK's PT2E quantizer (symmetric, per-channel weights) for our graphs; the
    submodules whose paths start with one of ``float_modules`` stay float.

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

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            if float_modules:  # XNNPACK's quantizer takes no "leave float" per module
                for node in model.graph.nodes:
                    if _in_modules(node, tuple(float_modules)):
                        node.meta.pop('quantization_annotation', None)
            return model

    quantizer = Quantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    return quantizer


def _quantized(graph, images: Sequence[torch.Tensor], float_modules: Sequence[str] = ()):
    """``graph`` (an exported program) quantized to INT8 by XNNPACK's PT2E quantizer,
    calibrated on ``images``, ``float_modules`` left float: a module to export again."""
    # registers the out variants of the quantized ops for the write: a weight's dequantize
    # before a convolution that XNNPACK does not take stays in ExecuTorch's own kernels
    import executorch.kernels.quantized  # noqa: F401

    from mmeffformer.quantization.pytorch_int8 import import_pt2e

    quantize_pt2e, _ = import_pt2e()
    prepared = quantize_pt2e.prepare_pt2e(graph.module(), _xnnpack_quantizer(float_modules))
    for image in images:
        prepared(image)
    converted = quantize_pt2e.convert_pt2e(prepared)
    tensor_forms = {scalar: tensor for tensor, scalar in SCALAR_FORMS.items()}
    for node in converted.graph.nodes:
        node.target = tensor_forms.get(node.target, node.target)
    converted.recompile()
    return converted


def _check_example(example_size: Tuple[int, int], max_shape: Tuple[int, int]) -> None:
    for name, side, bound in zip(('height', 'width'), example_size, max_shape):
        if not MIN_SIDE <= side <= bound:
            raise ValueError(
                f'the example {name} {side} must lie in [{MIN_SIDE}, {bound}] (the bound of '
                '--max-shape)'
            )


def _image_program(
    module: nn.Module,
    example_size: Tuple[int, int],
    max_shape: Tuple[int, int],
    int8_images: Optional[Sequence[torch.Tensor]],
    divisor: int = 1,
    float_modules: Sequence[str] = (),
):
    """``module`` on one image, exported with height and width free from :data:`MIN_SIDE` to
    ``max_shape`` (multiples of ``divisor``), quantized to INT8 when given calibration images
    (but for ``float_modules``)."""
    sides = [math.ceil(side / divisor) for side in example_size]
    sizes = image_dims(max_shape, divisor)
    example = (torch.rand(1, 3, *(side * divisor for side in sides)),)
    with torch.no_grad():
        graph = torch.export.export(module, example, dynamic_shapes=sizes)
        if int8_images is not None:
            graph = torch.export.export(
                _quantized(graph, int8_images, float_modules), example, dynamic_shapes=sizes
            )
    return graph


def _write(programs: Dict[str, object], out: str, constants: Dict[str, object]) -> None:
    """Lower the exported ``programs`` (method name -> program) to XNNPACK, write ``out``."""
    if not str(out).endswith('.pte'):
        raise ValueError(f'an ExecuTorch program is a .pte file, got {out!r}')
    lower, partitioner, edge_config = import_executorch()
    # No edge-dialect IR check, as in ExecuTorch's own XNNPACK export configuration: it
    # re-verifies every node of every pass (a quarter of the lowering time of our graphs),
    # and the tool runs the written program against PyTorch anyway.
    program = lower(
        programs,
        partitioner=[partitioner()],
        compile_config=edge_config(_check_ir_validity=False),
        constant_methods=constants,
    )
    with open(out, 'wb') as file:
        file.write(program.to_executorch().buffer)


def _constants(metadata: Dict[str, str], max_shape: Tuple[int, int]) -> Dict[str, object]:
    return {
        METADATA_METHOD: json_constant(metadata),
        BOUND_METHOD: [int(max_shape[0]), int(max_shape[1])],
    }


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
    _check_example(example_size, max_shape)
    import_executorch()  # a missing package is named before any work
    graph = _image_program(module, example_size, max_shape, int8_images)
    _write({'forward': graph}, out, _constants(metadata, max_shape))


def export_executorch_detector(
    graph: DetectorGraph,
    out: str,
    example_size: Tuple[int, int],
    max_shape: Tuple[int, int],
    metadata: Dict[str, str],
    model_cfg: dict,
    int8_images: Optional[Sequence[torch.Tensor]] = None,
) -> None:
    """Write ``out``: a detector's networks, one method each, lowered to XNNPACK.

    ``forward`` takes the normalised image padded to the preprocessor's size divisor and
    gives the dense head's class scores and box deltas per level (and, before them, the FPN
    features of a two-stage detector); each R-CNN box head and mask head is a method of its
    own (``box_head0``, ``mask_head0``, ...: RoI features in, the head's outputs out, up to
    the number of RoIs ``test_cfg`` lets through). What lies between them (anchors, box
    decoding, NMS, RoIAlign) has no weights: the runtime does it in PyTorch, the same way
    for every file (:mod:`mmeffformer.runtimes.program_detector`), from ``model_cfg``, which
    the program carries. With ``int8_images``, the backbone and neck in ``forward`` are INT8,
    calibrated on those images, and the heads fp32.
    """
    _check_example(example_size, max_shape)
    import_executorch()
    divisor = graph.size_divisor
    if int8_images is None:
        trunk = _image_program(DetectorTrunk(graph).eval(), example_size, max_shape, None, divisor)
    else:
        # What XNNPACK in ExecuTorch 1.5.1 gets wrong in INT8, measured on tiny Mask R-CNNs:
        # with sizes declared as multiples of the divisor the program's outputs keep the
        # bound's shapes whatever the input (the runtime pads to the divisor anyway, so the
        # INT8 trunk takes free sizes), and its quantized dense head (one convolution shared
        # by every level) fails to load ("Failed to create convolution node"): it stays fp32.
        images = [pad_to_divisor(image, divisor) for image in int8_images]
        trunk = _image_program(
            DetectorTrunk(graph, own_feature_outputs=True).eval(),
            example_size, max_shape, images, float_modules=('dense_head',),
        )  # fmt: skip
    programs = {'forward': trunk}
    for name, (owner, attribute, roi_shape, most) in roi_heads(graph).items():
        head = getattr(owner, attribute)
        rois = torch.export.Dim('rois', min=1, max=most)
        # the example has the most RoIs: from a smaller one ExecuTorch 1.5 planned the mask
        # head's memory for fewer RoIs than the bound (15 of 20) and refused the rest
        with torch.no_grad():
            programs[name] = torch.export.export(
                head, (torch.rand(most, *roi_shape),), dynamic_shapes=({0: rois},)
            )
    constants = _constants(metadata, max_shape)
    constants[MODEL_CFG_METHOD] = json_constant(model_cfg)
    _write(programs, out, constants)


def export_program(
    module: nn.Module,
    out: str,
    example_size: Tuple[int, int],
    max_shape: Tuple[int, int],
    cfg,
    int8_images: Optional[Sequence[torch.Tensor]] = None,
) -> Dict[str, str]:
    """Write ``out`` for ``module``, the :func:`~mmeffformer.export.exportable` form of
    ``cfg``'s model or backbone: a detector's networks (:func:`export_executorch_detector`,
    carrying ``cfg.model``) or the module whole; INT8 when given calibration images.
    Returns the metadata written (:func:`~mmeffformer.export.describe` and the precision)."""
    from .onnx_export import SegmentorGraph, describe

    metadata = dict(describe(module), precision='fp32' if int8_images is None else 'int8')
    if isinstance(module, SegmentorGraph):
        module = SegmentorGraph(module.segmentor, resize_to_input=False)
        key, value = HEAD_LOGITS
        metadata.update({key: value, 'align_corners': str(module.align_corners).lower()})
    if isinstance(module, DetectorGraph):
        model_cfg = dict(default_scope=cfg.get('default_scope', 'mmdet'), model=cfg.model.to_dict())
        export_executorch_detector(
            module, out, example_size, max_shape, metadata, model_cfg, int8_images
        )
    else:
        export_executorch(module, out, example_size, max_shape, metadata, int8_images)
    return metadata
