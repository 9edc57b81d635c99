"""Detection ops that export as standard ONNX operators.

Each op runs mmcv's kernel in PyTorch (so an exportable model gives the same
numbers as mmdet) and is written into the graph as the ONNX operator of the
same definition:

- :func:`nms_keep` -> ``NonMaxSuppression`` (IoU without the +1 offset, as mmcv);
- :func:`roi_align` -> ``RoiAlign`` (opset 16: ``half_pixel`` coordinates are
  mmcv's ``aligned=True``, ``output_half_pixel`` its ``aligned=False``).
"""

from __future__ import annotations

from typing import Tuple

import torch

ROI_ALIGN_MIN_OPSET = 16


class _NonMaxSuppression(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int):
        from mmcv.ops import nms

        if boxes.shape[0] == 0:
            return boxes.new_zeros(0, dtype=torch.long)
        _, keep = nms(boxes.float(), scores.float(), iou)
        return keep[:limit]

    @staticmethod
    def symbolic(g, boxes, scores, iou: float, limit: int):
        axis0 = g.op('Constant', value_t=torch.tensor([0]))
        batch_boxes = g.op('Unsqueeze', boxes, axis0)  # (1, N, 4)
        class_scores = g.op('Unsqueeze', scores, g.op('Constant', value_t=torch.tensor([0, 1])))
        selected = g.op(
            'NonMaxSuppression',
            batch_boxes,
            class_scores,  # (1, 1, N)
            g.op('Constant', value_t=torch.tensor([limit], dtype=torch.long)),
            g.op('Constant', value_t=torch.tensor([iou], dtype=torch.float)),
        )  # (K, 3) rows of (batch, class, box)
        return g.op('Gather', selected, g.op('Constant', value_t=torch.tensor(2)), axis_i=1)


def nms_keep(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """Indices of the boxes greedy NMS keeps, highest score first, at most ``limit``."""
    return _NonMaxSuppression.apply(boxes, scores, float(iou), int(limit))


class _RoiAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feature, boxes, batch_index, size, scale, sampling_ratio, aligned):
        from mmcv.ops import roi_align as mmcv_roi_align

        rois = torch.cat([batch_index[:, None].to(boxes.dtype), boxes], dim=1)
        return mmcv_roi_align(feature, rois, size, scale, sampling_ratio, 'avg', aligned)

    @staticmethod
    def symbolic(g, feature, boxes, batch_index, size, scale, sampling_ratio, aligned):
        return g.op(
            'RoiAlign',
            feature,
            boxes,
            batch_index,
            mode_s='avg',
            output_height_i=size[0],
            output_width_i=size[1],
            sampling_ratio_i=sampling_ratio,
            spatial_scale_f=scale,
            coordinate_transformation_mode_s='half_pixel' if aligned else 'output_half_pixel',
        )


def roi_align(
    feature: torch.Tensor,
    boxes: torch.Tensor,
    size: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """mmcv's average RoIAlign of ``(N, 4)`` image-space boxes on a batch-1 map."""
    batch_index = boxes.new_zeros(boxes.shape[0], dtype=torch.long)
    return _RoiAlign.apply(
        feature,
        boxes,
        batch_index,
        (int(size[0]), int(size[1])),
        float(spatial_scale),
        int(sampling_ratio),
        bool(aligned),
    )
