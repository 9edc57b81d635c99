"""mmdet detectors as one exportable graph: image -> boxes, scores, labels (, masks).

The graph follows mmdet 3's inference step for step (anchors, top-k, box
decoding, clipping, the minimum-size filter, batched NMS, RoI level mapping,
cascade refinement), written with ops that trace with dynamic sizes: the anchors
and clipping bounds come from the traced feature and image shapes, NMS and
RoIAlign are the ONNX operators (:mod:`mmeffformer.models.graphs.onnx_ops`).

Input: one image (batch 1), normalised like the data preprocessor does it and
*not* padded: the graph pads to the preprocessor's ``pad_size_divisor`` itself,
so boxes are clipped to the real image as in mmdet. Outputs, in the network's
input scale: ``boxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) and, for mask
models, ``masks`` (K, M, M): the mask head's probabilities of each detection's
class. Pasting masks into the image and rescaling to the original image are left
to :mod:`mmeffformer.runtimes.runtime_model`, the same for every backend.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .onnx_ops import nms_keep, roi_align

SUPPORTED_DETECTORS = ('MaskRCNN', 'FasterRCNN', 'CascadeRCNN', 'RetinaNet')


class UnsupportedModelError(ValueError):
    """A model part the exporter does not know, named with what is supported."""


def _require(condition: bool, what: str, got: object, supported: str) -> None:
    if not condition:
        raise UnsupportedModelError(f'cannot export {what} {got!r}; supported: {supported}')


def pad_to_divisor(image: torch.Tensor, divisor: int) -> torch.Tensor:
    """Zero-pad bottom and right to a multiple of ``divisor`` (mmdet's ``stack_batch``)."""
    if divisor <= 1:
        return image
    height, width = image.shape[-2:]
    pad_h = (divisor - height % divisor) % divisor
    pad_w = (divisor - width % divisor) % divisor
    return F.pad(image, [0, pad_w, 0, pad_h])


def grid_anchors(
    base: torch.Tensor, feature: torch.Tensor, stride: Tuple[int, int]
) -> torch.Tensor:
    """mmdet's ``AnchorGenerator.single_level_grid_priors``: (H * W * A, 4), row-major."""
    height, width = feature.shape[-2:]
    xs = torch.arange(width, device=base.device).to(base.dtype) * stride[0]
    ys = torch.arange(height, device=base.device).to(base.dtype) * stride[1]
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)


class DeltaDecoder(nn.Module):
    """mmdet's ``DeltaXYWHBBoxCoder.decode``, clipped to the image."""

    def __init__(self, coder) -> None:
        super().__init__()
        _require(
            type(coder).__name__ == 'DeltaXYWHBBoxCoder'
            and not coder.add_ctr_clamp
            and coder.clip_border,
            'box coder',
            type(coder).__name__,
            'DeltaXYWHBBoxCoder (clip_border=True, add_ctr_clamp=False)',
        )
        self.register_buffer('means', torch.tensor(coder.means, dtype=torch.float32))
        self.register_buffer('stds', torch.tensor(coder.stds, dtype=torch.float32))
        self.max_ratio = abs(math.log(16 / 1000))  # decode()'s default wh_ratio_clip

    def forward(self, priors: torch.Tensor, deltas: torch.Tensor, height, width) -> torch.Tensor:
        deltas = deltas * self.stds + self.means
        centre = (priors[:, :2] + priors[:, 2:]) * 0.5
        size = priors[:, 2:] - priors[:, :2]
        centre = centre + size * deltas[:, :2]
        size = size * deltas[:, 2:].clamp(min=-self.max_ratio, max=self.max_ratio).exp()
        x1y1, x2y2 = centre - size * 0.5, centre + size * 0.5
        # traced sizes are tensors, eager ones ints
        bounds = torch.stack([torch.as_tensor(width), torch.as_tensor(height)]).to(priors)
        zero = priors.new_zeros(())
        x1y1 = torch.minimum(torch.maximum(x1y1, zero), bounds)
        x2y2 = torch.minimum(torch.maximum(x2y2, zero), bounds)
        return torch.cat([x1y1, x2y2], dim=1)


def batched_nms_keep(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float, limit: int
) -> torch.Tensor:
    """mmdet's ``batched_nms``: NMS within each group, kept indices by score, at most ``limit``.

    Groups are separated the way mmdet does it below its ``split_thr``: each box is
    shifted by ``group * (max coordinate + 1)``.
    """
    top = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    shifted = boxes + (groups.to(boxes.dtype) * (top + 1))[:, None]
    return nms_keep(shifted, scores, iou, limit)


def _sorted_top(scores: torch.Tensor, limit: int) -> torch.Tensor:
    """Indices of the ``limit`` highest scores, highest first (all when fewer or limit <= 0).

    A top-k whose k is computed in the graph (``min(count, limit)``), instead of a full
    sort of e.g. the 180k anchors of an 800x1216 image's first level and a slice.
    """
    if limit <= 0:
        return scores.sort(descending=True)[1]
    count = torch.clamp(torch.as_tensor(scores.shape[0]), max=limit)
    return scores.topk(count)[1]


class DenseHeadGraph(nn.Module):
    """RPN / RetinaNet inference: per-level top-k, decoding, size filter, batched NMS."""

    def __init__(self, head: nn.Module, cfg) -> None:
        super().__init__()
        name = type(head).__name__
        _require(name in ('RPNHead', 'RetinaHead'), 'dense head', name, 'RPNHead, RetinaHead')
        generator = head.prior_generator
        _require(
            type(generator).__name__ == 'AnchorGenerator' and generator.center_offset == 0,
            'anchor generator',
            type(generator).__name__,
            'AnchorGenerator with center_offset=0',
        )
        _require(head.use_sigmoid_cls, 'classifier', 'softmax', 'use_sigmoid_cls=True')
        self.head = head
        self.is_rpn = name == 'RPNHead'
        self.strides = [tuple(s) for s in generator.strides]
        for level, base in enumerate(generator.base_anchors):
            self.register_buffer(f'base_anchors{level}', base.float(), persistent=False)
        self.decoder = DeltaDecoder(head.bbox_coder)
        self.num_classes = head.cls_out_channels
        self.nms_pre = int(cfg.get('nms_pre', -1))
        self.score_thr = float(cfg.get('score_thr', 0.0))
        self.min_size = float(cfg.get('min_bbox_size', -1))
        self.iou = float(cfg.nms.iou_threshold)
        _require(cfg.nms.get('type', 'nms') == 'nms', 'NMS type', cfg.nms.get('type'), "'nms'")
        self.max_per_img = int(cfg.max_per_img)

    def forward(self, feats: Sequence[torch.Tensor], height, width):
        return self.decode(self.head(feats), height, width)

    def decode(self, head_outputs, height, width):
        """Detections from the head's ``(class scores, box deltas)`` (one tensor per level)."""
        cls_scores, bbox_preds = head_outputs
        all_boxes, all_scores, all_groups = [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            anchors = grid_anchors(
                getattr(self, f'base_anchors{level}'), cls_score, self.strides[level]
            )
            deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            scores = cls_score[0].permute(1, 2, 0).reshape(-1, self.num_classes).sigmoid()
            if self.is_rpn:  # one class; mmdet sorts and keeps nms_pre (no score threshold)
                scores = scores.reshape(-1)
                if self.nms_pre > 0:
                    keep = _sorted_top(scores, self.nms_pre)
                    anchors, deltas, scores = anchors[keep], deltas[keep], scores[keep]
                groups = torch.full_like(scores, level, dtype=torch.long)
            else:  # mmdet's filter_scores_and_topk over (anchor, class) pairs
                flat = scores.reshape(-1)
                valid = torch.nonzero(flat > self.score_thr).squeeze(1)
                pairs = valid[_sorted_top(flat[valid], self.nms_pre)]
                chosen = torch.div(pairs, self.num_classes, rounding_mode='floor')
                anchors, deltas, scores = anchors[chosen], deltas[chosen], flat[pairs]
                groups = pairs % self.num_classes
            all_boxes.append(self.decoder(anchors, deltas, height, width))
            all_scores.append(scores)
            all_groups.append(groups)
        boxes, scores, groups = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_groups)
        if self.min_size >= 0:
            size = boxes[:, 2:] - boxes[:, :2]
            valid = torch.nonzero((size[:, 0] > self.min_size) & (size[:, 1] > self.min_size))
            valid = valid.squeeze(1)
            boxes, scores, groups = boxes[valid], scores[valid], groups[valid]
        keep = batched_nms_keep(boxes, scores, groups, self.iou, self.max_per_img)
        return boxes[keep], scores[keep], groups[keep]


class RoIFeatures(nn.Module):
    """mmdet's ``SingleRoIExtractor`` (level mapping by ``finest_scale``) on ONNX RoiAlign."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        name = type(extractor).__name__
        _require(
            hasattr(extractor, 'map_roi_levels') and hasattr(extractor, 'roi_layers'),
            'RoI extractor',
            name,
            'SingleRoIExtractor, mmeffformer.MatmulRoIExtractor',
        )
        layer = extractor.roi_layers[0]
        _require(
            getattr(layer, 'pool_mode', 'avg') == 'avg' and hasattr(layer, 'sampling_ratio'),
            'RoI layer',
            type(layer).__name__,
            "RoIAlign with pool_mode='avg'",
        )
        self.size = tuple(layer.output_size)
        self.sampling_ratio = int(layer.sampling_ratio)
        self.aligned = bool(layer.aligned)
        self.scales = [float(roi.spatial_scale) for roi in extractor.roi_layers]
        self.finest_scale = float(extractor.finest_scale)
        self.channels = int(extractor.out_channels)

    def forward(self, feats: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        levels = torch.floor(torch.log2(area.sqrt() / self.finest_scale + 1e-6))
        levels = levels.clamp(min=0, max=len(self.scales) - 1).long()
        out = feats[0].new_zeros(boxes.shape[0], self.channels, *self.size)
        for level, scale in enumerate(self.scales):
            chosen = torch.nonzero(levels == level).squeeze(1)
            pooled = roi_align(
                feats[level], boxes[chosen], self.size, scale, self.sampling_ratio, self.aligned
            )
            out = out.index_put((chosen,), pooled)
        return out


class BoxStage(nn.Module):
    """One R-CNN box stage: RoI features -> the bbox head's class logits and boxes."""

    def __init__(self, extractor: nn.Module, head: nn.Module) -> None:
        super().__init__()
        name = type(head).__name__
        _require(
            hasattr(head, 'fc_cls')
            and hasattr(head, 'bbox_coder')
            and not head.custom_cls_channels,
            'bbox head',
            name,
            'Shared2FCBBoxHead / ConvFCBBoxHead / BBoxHead with softmax classes',
        )
        self.features = RoIFeatures(extractor)
        self.head = head
        self.decoder = DeltaDecoder(head.bbox_coder)
        self.num_classes = int(head.num_classes)
        self.class_agnostic = bool(head.reg_class_agnostic)

    def forward(self, feats, rois: torch.Tensor, height, width):
        cls_score, bbox_pred = self.head(self.features(feats, rois))
        classes = 1 if self.class_agnostic else self.num_classes
        priors = rois.repeat_interleave(classes, dim=0) if classes > 1 else rois
        boxes = self.decoder(priors, bbox_pred.reshape(-1, 4), height, width)
        return cls_score, boxes.reshape(rois.shape[0], classes, 4)


class TwoStageGraph(nn.Module):
    """RPN proposals, one or more box stages (cascade), class-wise NMS, optional masks."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        test_cfg = detector.test_cfg
        self.rpn = DenseHeadGraph(detector.rpn_head, test_cfg.rpn)
        roi_head = detector.roi_head
        cascade = hasattr(roi_head, 'num_stages')
        extractors = roi_head.bbox_roi_extractor if cascade else [roi_head.bbox_roi_extractor]
        heads = roi_head.bbox_head if cascade else [roi_head.bbox_head]
        self.stages = nn.ModuleList(BoxStage(e, h) for e, h in zip(extractors, heads))
        self.with_mask = bool(roi_head.with_mask)
        if self.with_mask:
            mask_heads = roi_head.mask_head if cascade else [roi_head.mask_head]
            mask_extractors = (
                roi_head.mask_roi_extractor if cascade else [roi_head.mask_roi_extractor]
            )
            _require(
                not roi_head.share_roi_extractor,
                'shared RoI extractor',
                True,
                'separate extractors',
            )
            self.mask_features = nn.ModuleList(RoIFeatures(e) for e in mask_extractors)
            self.mask_heads = nn.ModuleList(mask_heads)
        rcnn = test_cfg.rcnn
        _require(rcnn.nms.get('type', 'nms') == 'nms', 'NMS type', rcnn.nms.get('type'), "'nms'")
        self.score_thr = float(rcnn.score_thr)
        self.iou = float(rcnn.nms.iou_threshold)
        self.max_per_img = int(rcnn.max_per_img)

    def forward(self, feats, height, width) -> List[torch.Tensor]:
        return self.second_stage(feats, self.rpn(feats, height, width)[0], height, width)

    def second_stage(self, feats, rois: torch.Tensor, height, width) -> List[torch.Tensor]:
        """Detections (and masks) from the RPN's proposals ``rois``."""
        logits = []
        for index, stage in enumerate(self.stages):
            cls_score, boxes = stage(feats, rois, height, width)
            logits.append(cls_score)
            if index < len(self.stages) - 1:  # cascade: refine by the best foreground class
                if boxes.shape[1] > 1:
                    best = cls_score[:, :-1].argmax(dim=1)
                    boxes = boxes[torch.arange(boxes.shape[0]), best]
                rois = boxes.reshape(-1, 4)
        scores = (sum(logits) / len(logits)).softmax(dim=-1)[:, :-1]
        num_rois, num_classes = scores.shape
        boxes = boxes.expand(num_rois, num_classes, 4) if boxes.shape[1] == 1 else boxes
        labels = torch.arange(num_classes, device=scores.device).expand(num_rois, num_classes)
        flat = scores.reshape(-1)
        valid = torch.nonzero(flat > self.score_thr).squeeze(1)
        boxes, scores, labels = boxes.reshape(-1, 4)[valid], flat[valid], labels.reshape(-1)[valid]
        keep = batched_nms_keep(boxes, scores, labels, self.iou, self.max_per_img)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if not self.with_mask:
            return [boxes, scores, labels]
        probabilities = []
        for features, head in zip(self.mask_features, self.mask_heads):
            mask_logits = head(features(feats, boxes))
            if mask_logits.shape[1] > 1:  # class-specific masks: the detection's class
                index = labels.view(-1, 1, 1, 1).expand(-1, 1, *mask_logits.shape[2:])
                mask_logits = mask_logits.gather(1, index)
            probabilities.append(mask_logits[:, 0].sigmoid())
        return [boxes, scores, labels, sum(probabilities) / len(probabilities)]


class DetectorGraph(nn.Module):
    """A whole mmdet detector for export: unpadded normalised image -> detections."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        name = type(detector).__name__
        _require(name in SUPPORTED_DETECTORS, 'detector', name, ', '.join(SUPPORTED_DETECTORS))
        self.detector = detector
        self.size_divisor = int(getattr(detector.data_preprocessor, 'pad_size_divisor', 1))
        if hasattr(detector, 'roi_head'):
            self.graph = TwoStageGraph(detector)
            self.with_mask = self.graph.with_mask
        else:
            self.graph = DenseHeadGraph(detector.bbox_head, detector.test_cfg)
            self.with_mask = False

    @property
    def output_names(self) -> List[str]:
        return ['boxes', 'scores', 'labels'] + (['masks'] if self.with_mask else [])

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        height, width = image.shape[-2:]
        feats = self.detector.extract_feat(pad_to_divisor(image, self.size_divisor))
        return list(self.graph(feats, height, width))
