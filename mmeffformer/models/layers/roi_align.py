"""RoIAlign as two small matrix products: mmcv's ``RoIAlign`` (avg mode), multi-threaded.

mmcv's compiled CPU RoIAlign runs on one thread and has no bf16 kernel; in the demo's
Mask R-CNN its forward and backward were about a third of a CPU training step
(docs/train_step.md). Bilinear sampling on a regular grid is separable: a bin's
average over its sample points is ``rows @ feature @ cols.T``, where ``rows``
(``bins x H``) holds, for each output row, the mean of its samples' vertical
interpolation weights, and ``cols`` (``bins x W``) the same horizontally. Both come
from the RoI alone, so the op becomes two matmuls whose gradient autograd gives (and
that run in bf16 under autocast). The sample positions, the out-of-map rule and the
adaptive grid (``sampling_ratio=0``) follow mmcv's kernel, so results agree with it to
float rounding (tests/test_models/test_layers/test_roi_align.py).

The cost grows with the feature map (each RoI reads whole rows of its level): the
win is on the small maps of CPU training at a few hundred pixels; at COCO sizes
mmcv's kernel does less work.
"""

from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

#: Largest intermediate of one matmul, in elements (64 MiB in float32).
CHUNK_ELEMENTS = 1 << 24


def axis_weights(
    start: Tensor,
    end: Tensor,
    size: int,
    bins: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """``(K, bins, size)`` float32: for each RoI and output bin along one axis, the mean
    over the bin's sample points of their linear interpolation weights on the ``size``
    feature cells (mmcv's sample positions and out-of-map rule)."""
    start, end = start.float() * spatial_scale, end.float() * spatial_scale
    if aligned:  # pixel centres at half-integers (mmcv's aligned=True)
        start, end = start - 0.5, end - 0.5
    length = end - start
    if not aligned:  # mmcv's legacy mode: RoIs at least one cell wide
        length = length.clamp(min=1.0)
    bin_size = length / bins
    if sampling_ratio > 0:
        grid = torch.full_like(length, float(sampling_ratio))
    else:  # adaptive: ceil(bin size) samples per bin, none for empty or inverted RoIs
        grid = torch.ceil(bin_size).clamp(min=0)
    count = int(grid.max().item()) if grid.numel() else 0
    weights = torch.zeros(start.shape[0], bins, size, device=start.device)
    if count == 0:
        return weights
    bin_index = torch.arange(bins, device=start.device, dtype=torch.float32)
    sample = torch.arange(count, device=start.device, dtype=torch.float32)
    samples_per_bin = grid.clamp(min=1)[:, None, None]
    # (K, bins, samples), in mmcv's order of operations
    position = (start[:, None, None] + bin_index[None, :, None] * bin_size[:, None, None]) + (
        (sample[None, None, :] + 0.5) * bin_size[:, None, None] / samples_per_bin
    )
    used = (sample[None, None, :] < grid[:, None, None]) & (position >= -1) & (position <= size)
    position = position.clamp(min=0)
    # Beyond the last cell's centre both neighbours are the last cell, so its whole share
    # lands there, as mmcv samples the last cell itself.
    low = position.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    fraction = position - low
    share = used / samples_per_bin
    weights.scatter_add_(2, low, (1 - fraction) * share)
    weights.scatter_add_(2, high, fraction * share)
    return weights


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: Union[int, Tuple[int, int]],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> Tensor:
    """mmcv's ``roi_align`` in avg mode: ``features`` (N, C, H, W), ``rois`` (K, 5) as
    (batch index, x1, y1, x2, y2) in input pixels; returns (K, C, out_h, out_w) in the
    features' dtype (autocast's, under autocast). RoIs are not differentiated."""
    if features.dim() != 4 or rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(
            'roi_align expects features (N, C, H, W) and rois (K, 5), got '
            f'{tuple(features.shape)} and {tuple(rois.shape)}'
        )
    out_h, out_w = _pair(output_size)
    _, channels, height, width = features.shape
    rois = rois.detach()
    with torch.no_grad():
        rows = axis_weights(
            rois[:, 2], rois[:, 4], height, out_h, spatial_scale, sampling_ratio, aligned
        )
        cols = axis_weights(
            rois[:, 1], rois[:, 3], width, out_w, spatial_scale, sampling_ratio, aligned
        )
    batch_index = rois[:, 0].long()
    # RoIs per matmul: the (k * out_h, C * W) intermediate stays under CHUNK_ELEMENTS
    per_chunk = max(1, CHUNK_ELEMENTS // (out_h * channels * width))
    pieces, order = [], []
    for image in torch.unique(batch_index).tolist():
        by_row = features[image].transpose(0, 1).reshape(height, channels * width)
        for chosen in torch.nonzero(batch_index == image).squeeze(1).split(per_chunk):
            count = chosen.numel()
            # (k * out_h, H) @ (H, C * W): the chunk's rows at once
            sampled = rows[chosen].reshape(count * out_h, height).to(by_row.dtype) @ by_row
            # (k, out_h * C, W) @ (k, W, out_w)
            sampled = sampled.reshape(count, out_h * channels, width)
            pooled = torch.bmm(sampled, cols[chosen].transpose(1, 2).to(sampled.dtype))
            pieces.append(pooled.reshape(count, out_h, channels, out_w).permute(0, 2, 1, 3))
            order.append(chosen)
    if not pieces:
        return features.new_zeros(0, channels, out_h, out_w)
    pooled = torch.cat(pieces)
    inverse = torch.empty_like(batch_index)
    inverse[torch.cat(order)] = torch.arange(len(batch_index), device=inverse.device)
    return pooled[inverse].contiguous()


class MatmulRoIAlign(nn.Module):
    """Drop-in for ``mmcv.ops.RoIAlign`` (same arguments; ``pool_mode='avg'`` only)
    computed by :func:`roi_align`."""

    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        pool_mode: str = 'avg',
        aligned: bool = True,
        use_torchvision: bool = False,
    ) -> None:
        super().__init__()
        if pool_mode != 'avg':
            raise ValueError(f"MatmulRoIAlign supports pool_mode='avg' only, got {pool_mode!r}")
        if use_torchvision:
            raise ValueError('MatmulRoIAlign does not call torchvision; use_torchvision=False')
        if int(sampling_ratio) < 0:
            raise ValueError(f'sampling_ratio must be >= 0 (0: adaptive), got {sampling_ratio}')
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        return roi_align(
            features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f'output_size={self.output_size}, spatial_scale={self.spatial_scale}, '
            f'sampling_ratio={self.sampling_ratio}, aligned={self.aligned}'
        )
