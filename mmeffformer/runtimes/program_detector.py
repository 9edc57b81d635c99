"""An mmdet detector's ExecuTorch program run with the rest of its inference in PyTorch.

ExecuTorch runs networks; a detector's inference also has steps without weights whose sizes
depend on the data (anchors, box decoding, NMS, RoIAlign, choosing each detection's mask).
A detector's program (``tools/export_executorch.py --part model``) therefore holds its
networks as methods:

- ``forward``: the image, padded to the preprocessor's size divisor -> the dense head's class
  scores and box deltas per level, after the FPN features for a two-stage detector;
- ``box_head0``, ``box_head1``, ...: one per R-CNN stage (cascade: three), RoI features ->
  class logits and box deltas;
- ``mask_head0``, ...: RoI features -> mask logits;

and carries the model's config (``mmdet_model``). :class:`ProgramDetector` builds
:class:`~mmeffformer.models.graphs.detector_graph.DetectorGraph` (the same inference the
ONNX files hold) from that config, with each network replaced by its method, so the
program's detections are those of the ONNX file and of mmdet.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from mmeffformer.models.graphs.detector_graph import DetectorGraph, pad_to_divisor

from .program_constants import MODEL_CFG_METHOD, read_json_constant


def _two_stage(graph: DetectorGraph) -> bool:
    return hasattr(graph.graph, 'stages')


class DetectorTrunk(nn.Module):
    """A detector's program ``forward``: padded image -> (FPN features of a two-stage
    detector,) the dense head's class scores per level, its box deltas per level."""

    def __init__(self, graph: DetectorGraph, own_feature_outputs: bool = False) -> None:
        super().__init__()
        self.detector = graph.detector
        self.two_stage = _two_stage(graph)
        self.dense_head = graph.graph.rpn.head if self.two_stage else graph.graph.head
        self.own_feature_outputs = own_feature_outputs

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.detector.extract_feat(image)
        scores, deltas = self.dense_head(feats)
        if not self.two_stage:
            return (*scores, *deltas)
        if self.own_feature_outputs:
            # INT8: a quantized feature that is both an output and the dense head's input
            # makes XNNPACK's channels-last pass (ExecuTorch 1.5) point the output at a
            # node it made without shape metadata, and lowering fails (KeyError 'val'); an
            # op of the output's own keeps the two uses apart (the same values)
            feats = tuple(feat * 1.0 for feat in feats)
        return (*feats, *scores, *deltas)

    def output_names(self, count: int) -> List[str]:
        """The names of ``forward``'s ``count`` outputs."""
        levels = count // (3 if self.two_stage else 2)
        kinds = (['features'] if self.two_stage else []) + ['class scores', 'box deltas']
        return [f'{kind} {level}' for kind in kinds for level in range(levels)]


def roi_heads(graph: DetectorGraph) -> Dict[str, Tuple[nn.Module, str, Tuple[int, ...], int]]:
    """The R-CNN heads of ``graph`` by method name: (owner, attribute, one RoI's feature
    shape, the most RoIs it takes: the RPN's ``max_per_img`` for box heads, the R-CNN's
    for mask heads)."""
    if not _two_stage(graph):
        return {}
    two = graph.graph
    heads = {}
    for index, stage in enumerate(two.stages):
        shape = (stage.features.channels, *stage.features.size)
        heads[f'box_head{index}'] = (stage, 'head', shape, two.rpn.max_per_img)
    if two.with_mask:
        for index, features in enumerate(two.mask_features):
            shape = (features.channels, *features.size)
            heads[f'mask_head{index}'] = (two.mask_heads, str(index), shape, two.max_per_img)
    return heads


class ProgramMethod(nn.Module):
    """A method of a loaded program in place of the network it was exported from."""

    def __init__(self, method, name: str, most: int) -> None:
        super().__init__()
        self.method, self.name, self.most = method, name, most

    def forward(self, features: torch.Tensor):
        count = features.shape[0]
        if count > self.most:
            raise ValueError(
                f"the program's {self.name} takes at most {self.most} RoIs (test_cfg when it "
                f'was exported), got {count}'
            )
        # a method's sizes start at one: no RoI runs one zero RoI and keeps none of it
        given = features if count else features.new_zeros(1, *features.shape[1:])
        outputs = [output[:count] for output in self.method.execute([given.contiguous()])]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def read_model_cfg(program) -> dict:
    """The detector config a program carries (``{'default_scope': ..., 'model': ...}``)."""
    return read_json_constant(program, MODEL_CFG_METHOD)


class ProgramDetector:
    """``detector(image) -> [boxes, scores, labels(, masks)]``, as the ONNX file gives them,
    for one normalised unpadded ``(1, C, H, W)`` image."""

    def __init__(self, program) -> None:
        from mmengine.config import Config

        from mmeffformer.utils.model_analysis import build_model_from_cfg

        detector = build_model_from_cfg(Config(read_model_cfg(program)))
        self.graph = DetectorGraph(detector)
        del detector.backbone, detector.neck  # the program runs them
        for name, (owner, attribute, _, most) in roi_heads(self.graph).items():
            setattr(owner, attribute, ProgramMethod(program.load_method(name), name, most))
        self.forward = program.load_method('forward')

    def __call__(self, image: torch.Tensor) -> List[torch.Tensor]:
        height, width = image.shape[-2:]
        padded = pad_to_divisor(image, self.graph.size_divisor).contiguous()
        outputs: Sequence[torch.Tensor] = self.forward.execute([padded])
        with torch.no_grad():
            if not _two_stage(self.graph):
                levels = len(outputs) // 2
                dense = (outputs[:levels], outputs[levels:])
                return list(self.graph.graph.decode(dense, height, width))
            levels = len(outputs) // 3
            feats = outputs[:levels]
            dense = (outputs[levels : 2 * levels], outputs[2 * levels :])
            rois = self.graph.graph.rpn.decode(dense, height, width)[0]
            return list(self.graph.graph.second_stage(feats, rois, height, width))
