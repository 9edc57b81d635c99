"""Spatial resampling written for speed on CPU, numerically equal to PyTorch's ops.

Profiling (torch.profiler on the backbones) showed two PyTorch CPU kernels far slower than
the arithmetic they do at these shapes:

- ``avg_pool2d(3, 1, 1)`` on NCHW maps: ~7.5 ms for a 48x128x128 map, while a
  depthwise 3x3 box-sum convolution does the same sums in ~0.7 ms;
- ``upsample_bilinear2d`` with many channels on a small grid: it copies to
  channels-last and back; two small matrix products do the same interpolation
  ~5x faster.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmeffformer.utils.export_mode import is_exporting
from mmeffformer.utils.torch_features import has_eye


def _neighbour_counts(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """How many of the 3 positions ``i-1, i, i+1`` lie inside ``0..length-1``."""
    counts = torch.full((length,), 3.0, device=device, dtype=dtype)
    counts[0] -= 1
    counts[-1] -= 1  # length 1: both borders at index 0 -> 1
    return counts


def neighbour_count_map(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``(H, W)`` map of how many of its 3x3 neighbours (itself included) each
    position has inside the map: 9 inside, 6 on edges, 4 in corners."""
    rows = _neighbour_counts(height, device, dtype)
    cols = _neighbour_counts(width, device, dtype)
    return rows[:, None] * cols[None, :]


def mean_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """``AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x)``.

    The 3x3 sum is a depthwise convolution with a ones kernel; each position
    is then divided by its number of real neighbours (2 or 3 per axis).
    """
    if x.dim() != 4:
        raise ValueError(f'mean_pool3x3 expects an NCHW tensor, got shape {tuple(x.shape)}')
    if is_exporting():  # the runtimes' own pooling, at any traced size
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    channels, height, width = x.shape[1:]
    kernel = x.new_ones(channels, 1, 3, 3)
    total = F.conv2d(x, kernel, padding=1, groups=channels)
    return total / neighbour_count_map(height, width, x.device, total.dtype)


class MeanPool3x3(nn.Module):
    """Module form of :func:`mean_pool3x3` (no parameters, no state)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_pool3x3(x)


def _linear_weights(out_size: int, in_size: int, like: torch.Tensor) -> torch.Tensor:
    """``(in_size, out_size)`` matrix of 1-D linear interpolation weights
    (``align_corners=False``), taken from PyTorch's own 1-D kernel so the
    sampling positions are exactly those of ``F.interpolate``.
    """
    dtype = like.dtype if has_eye(like.dtype, like.device.type) else torch.float32
    eye = torch.eye(in_size, device=like.device, dtype=dtype).unsqueeze(0)
    weights = F.interpolate(eye, size=out_size, mode='linear', align_corners=False)[0]
    return weights.to(like.dtype)


def resize_bilinear(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` for NCHW ``x``.

    Bilinear interpolation is separable: ``out = A_h @ x @ A_w^T``.
    """
    if is_exporting():  # the runtimes' own resize, to a size computed in the graph
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    height, width = x.shape[-2:]
    out_height, out_width = int(size[0]), int(size[1])
    if (height, width) == (out_height, out_width):
        return x
    cols = _linear_weights(out_width, width, x)  # (w, W)
    rows = _linear_weights(out_height, height, x).t()  # (H, h)
    return torch.matmul(rows, torch.matmul(x, cols))


def _cubic_weights(t: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Keys' cubic convolution weights of the taps at ``-1, 0, 1, 2`` for offsets ``t``."""

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)


def _cubic_taps(out_size, in_size: int, like: torch.Tensor, align_corners: bool = False):
    """Source indices ``(out, 4)`` and weights ``(out, 4)`` of a 1-D bicubic resize.

    The sampling of ``F.interpolate(mode='bicubic')``: source ``(i + 0.5) * in / out - 0.5``,
    or ``i * (in - 1) / (out - 1)`` with ``align_corners``; A = -0.75, border taps clamped.
    Element-wise ops only, so ``out_size`` may be a traced size.
    """
    out_index = torch.arange(out_size, device=like.device).to(like.dtype)
    if isinstance(out_size, torch.SymInt):
        # torch.export: a tensor of the size would be a constant, and a Python division of
        # two sizes a float symbol that ExecuTorch's edge dialect does not take; the sizes
        # go into tensor ops as they are
        if align_corners:
            steps = (out_index.new_ones(()) * (out_size - 1)).clamp(min=1)
            source = out_index * (in_size - 1) / steps
        else:
            source = (out_index + 0.5) * in_size / out_size - 0.5
    else:  # an int, or a size the ONNX tracer records
        out = torch.as_tensor(out_size).to(like.dtype)
        if align_corners:
            source = out_index * (in_size - 1) / (out - 1).clamp(min=1)
        else:
            source = (out_index + 0.5) * (in_size / out) - 0.5
    base = torch.floor(source)
    weights = _cubic_weights(source - base)
    taps = base[:, None] + torch.arange(-1, 3, device=like.device).to(like.dtype)
    return taps.clamp(0, in_size - 1).long(), weights


def resize_bicubic_by_gathers(x: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """``F.interpolate(x[None], size, mode='bicubic', align_corners=...)[0]`` for (C, H, W).

    Rows, then columns: each output is four gathered neighbours times their weights.
    Written for export: the sizes may be traced, and the gathers cost a few
    multiply-adds per output, where ONNX Runtime's cubic Resize took seconds on
    attention-bias-sized maps and dense interpolation matrices cost a matrix product.
    """
    row_index, row_weight = _cubic_taps(size[0], x.shape[1], x, align_corners)
    rows = sum(x[:, row_index[:, k]] * row_weight[None, :, k, None] for k in range(4))
    col_index, col_weight = _cubic_taps(size[1], x.shape[2], x, align_corners)
    return sum(rows[:, :, col_index[:, k]] * col_weight[None, None, :, k] for k in range(4))
