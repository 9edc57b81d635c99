"""ONNX export of a backbone, an mmseg segmentor or an mmdet detector, at any input size.

Choices (also in docs/export.md):

- TorchScript-based exporter (``dynamo=False``): it needs no extra packages and
  handles every op used here; opset 17 by default (the first with a native
  LayerNormalization; RoiAlign's ``half_pixel`` mode needs 16).
- Height and width are dynamic: the attention biases, pooling and resizes are
  computed in the graph from the traced sizes (see
  :func:`mmeffformer.utils.export_mode.is_exporting`), so one file serves every
  input size; the example size only drives the trace. ``dynamic_batch`` also
  frees the batch axis (not for detectors, which take one image).
- Outputs: the backbone's feature maps (``stage0`` .. ``stage3``); for a
  segmentor the class logits at the input size (``seg_logits``); for a detector
  the detections of :class:`~mmeffformer.models.graphs.detector_graph.DetectorGraph`.
- The file records what it holds (task, model type, number of classes) in its
  metadata, so a runtime can refuse a file that does not fit a config.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import partial
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmeffformer.models.graphs.detector_graph import DetectorGraph, UnsupportedModelError
from mmeffformer.utils.export_mode import is_exporting
from mmeffformer.utils.torch_features import torchscript_exporter

DEFAULT_OPSET = 17
METADATA_PREFIX = 'mmeffformer.'


def _traced_upsample(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """mmseg's ``Upsample`` by its factor: the same output, but sized by the runtime.

    mmseg computes the output size with ``int()``, which a trace records as a
    constant of the example size; for the integer factors its heads use, the
    scale-factor form gives the same size and the same sampling positions.
    """
    return F.interpolate(
        x, scale_factor=module.scale_factor, mode=module.mode, align_corners=module.align_corners
    )


@contextmanager
def _upsampling_sized_at_run_time(model: nn.Module):
    from mmseg.models.utils import Upsample

    patched = [m for m in model.modules() if isinstance(m, Upsample) and not m.size]
    for module in patched:
        module.forward = partial(_traced_upsample, module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


class SegmentorGraph(nn.Module):
    """mmseg ``encode_decode`` at the traced size: images -> logits at the input size, or
    with ``resize_to_input=False`` the decode head's logits (a quarter of the input size
    for Semantic FPN), which the runtime then resizes as this graph would."""

    output_names = ['seg_logits']

    def __init__(self, segmentor: nn.Module, resize_to_input: bool = True) -> None:
        super().__init__()
        self.resize_to_input = resize_to_input
        name = type(segmentor).__name__
        if name != 'EncoderDecoder':
            raise UnsupportedModelError(
                f'cannot export segmentor {name!r}; supported: EncoderDecoder'
            )
        self.segmentor = segmentor
        self.align_corners = bool(segmentor.decode_head.align_corners)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if is_exporting():
            with _upsampling_sized_at_run_time(self.segmentor):
                logits = self.segmentor.decode_head(self.segmentor.extract_feat(images))
        else:
            logits = self.segmentor.decode_head(self.segmentor.extract_feat(images))
        if not self.resize_to_input:
            return logits
        return F.interpolate(
            logits, size=images.shape[-2:], mode='bilinear', align_corners=self.align_corners
        )


def exportable(model: nn.Module, scope: str, part: str) -> nn.Module:
    """The module to trace: the backbone itself, a segmentor's logits or a detector's detections."""
    if part == 'backbone':
        return model
    if scope == 'mmseg':
        return SegmentorGraph(model)
    if scope == 'mmdet':
        return DetectorGraph(model)
    raise UnsupportedModelError(
        f"cannot export a whole model of scope {scope!r}; supported: 'mmseg', 'mmdet'"
    )


def output_names(module: nn.Module) -> List[str]:
    """The exported outputs of ``module`` (a backbone's are its stages)."""
    names = getattr(module, 'output_names', None)
    if names is not None:
        return list(names)
    return [f'stage{i}' for i in getattr(module, 'out_indices', range(4))]


def _backbone_name(backbone: nn.Module) -> str:
    widths = getattr(backbone, 'widths', None)
    return type(backbone).__name__ + (f' widths {list(widths)}' if widths is not None else '')


def describe(module: nn.Module) -> Dict[str, str]:
    """Metadata written into the file: task, model, backbone and number of classes."""
    if isinstance(module, SegmentorGraph):
        model = module.segmentor
        return dict(
            task='segmentation',
            model=type(model).__name__,
            backbone=_backbone_name(model.backbone),
            classes=str(model.decode_head.num_classes),
        )
    if isinstance(module, DetectorGraph):
        model = module.detector
        head = model.roi_head.bbox_head if hasattr(model, 'roi_head') else model.bbox_head
        head = head[-1] if isinstance(head, nn.ModuleList) else head
        return dict(
            task='detection',
            model=type(model).__name__,
            backbone=_backbone_name(model.backbone),
            classes=str(head.num_classes),
            masks=str(module.with_mask),
        )
    return dict(task='backbone', model=_backbone_name(module))


def read_metadata(path: str) -> Dict[str, str]:
    """The ``mmeffformer.*`` metadata of an exported file: ``.onnx``, the OpenVINO ``.xml``
    IR of tools/quantize.py or the ExecuTorch ``.pte`` of tools/export_executorch.py (empty
    for other files)."""
    if str(path).endswith('.xml'):
        from mmeffformer.quantization.openvino_int8 import read_ir_metadata

        return {k: v for k, v in read_ir_metadata(path).items() if k != 'precision'}
    if str(path).endswith('.pte'):  # the description alone: a detector's runtime is not built
        from mmeffformer.runtimes.backends import load_program, program_metadata

        return program_metadata(load_program(path))
    import onnx

    model = onnx.load(path, load_external_data=False)
    return {
        p.key[len(METADATA_PREFIX) :]: p.value
        for p in model.metadata_props
        if p.key.startswith(METADATA_PREFIX)
    }


def _dynamic_axes(module: nn.Module, names: List[str], dynamic_batch: bool) -> dict:
    image = {2: 'height', 3: 'width'}
    if isinstance(module, DetectorGraph):
        return {'image': image, **{name: {0: 'detections'} for name in names}}
    batch = {0: 'batch'} if dynamic_batch else {}
    axes = {'image': {**batch, **image}}
    for name in names:
        axes[name] = {**batch, 2: f'{name}_height', 3: f'{name}_width'}
    return axes


def export_onnx(
    module: nn.Module,
    path: str,
    size: Tuple[int, int],
    names: Optional[List[str]] = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    batch: int = 1,
) -> List[str]:
    """Trace ``module`` on a ``(batch, 3, H, W)`` example, write ``path``, return the outputs."""
    import onnx

    if isinstance(module, DetectorGraph) and (dynamic_batch or batch != 1):
        raise ValueError(
            'a detector file takes one image: dynamic_batch and batch > 1 are not supported'
        )
    if isinstance(module, DetectorGraph) and opset < 16:
        raise ValueError(f'detector export needs opset >= 16 (RoiAlign half_pixel), got {opset}')
    names = list(names) if names is not None else output_names(module)
    module.eval()
    example = torch.rand(batch, 3, *size)
    with torch.no_grad(), warnings.catch_warnings():
        # Shape-dependent Python branches are recorded as constants; the ones left are
        # fixed by the model (channels, classes), and the file is checked at other sizes.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=['image'],
            output_names=names,
            opset_version=opset,
            dynamic_axes=_dynamic_axes(module, names, dynamic_batch),
            **torchscript_exporter(),
        )
    model = onnx.load(path)
    for key, value in describe(module).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    onnx.save(model, path)
    return names
