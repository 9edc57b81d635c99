"""RoIAlign as two small matrix products per RoI: mmcv's ``RoIAlign`` (avg mode),
multi-threaded and in bf16 / fp16 where the features are.

mmcv's compiled CPU RoIAlign runs on one thread and has float32 kernels only; it was
over half of a bf16 Mask R-CNN inference at 800x1216. Bilinear sampling on a regular
grid is separable: a bin's average over its sample points is ``rows @ window @ cols.T``,
where ``rows`` (``bins x h``) holds, for each output row, the mean of its samples'
vertical interpolation weights on the ``h`` feature rows the RoI's samples touch, and
``cols`` (``bins x w``) the same horizontally. Both come from the RoI alone. In the
features' channels-last layout the RoI's ``h x w`` window is a strided matrix
``h x (w * C)`` that BLAS reads in place, so each RoI costs two matmuls on its own
window and nothing else is copied; the backward pass is the transposed products,
accumulated in place into the gradient's windows.

The sample positions, the out-of-map rule and the adaptive grid (``sampling_ratio=0``)
follow mmcv's kernel, so values and gradients agree with it to float rounding
(tests/test_models/test_layers/test_roi_align.py).
"""

from __future__ import annotations

from typing import List, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from mmeffformer.utils.torch_features import autocast_dtype, autocast_enabled


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


def axis_windows(weights: Tensor) -> Tuple[Tensor, Tensor]:
    """First cell and number of cells ``(K,)`` that each RoI's ``weights``
    (K, bins, size) touch: the window its bilinear samples read (0 cells if none)."""
    touched = (weights != 0).any(1)
    size = touched.shape[1]
    first = touched.to(torch.uint8).argmax(1)  # argmax gives the first maximum
    last = size - 1 - touched.flip(1).to(torch.uint8).argmax(1)
    count = torch.where(touched.any(1), last - first + 1, torch.zeros_like(first))
    return first, count


#: One RoI's window: (image, first row, rows, first column, columns)
Window = Tuple[int, int, int, int, int]


class WindowedRoIAlign(torch.autograd.Function):
    """Per-RoI ``rows @ window @ cols.T`` on channels-last features; gradient for the
    features only (the weights come from detached RoIs). ``rows`` (K, out_h, H) and
    ``cols`` (K, out_w, W) are contiguous; each RoI's operands are ``as_strided`` views
    (one call each: the Python loop over RoIs is the op's overhead)."""

    @staticmethod
    def forward(
        ctx,  # noqa: ANN001 - autograd's context
        features: Tensor,
        rows: Tensor,
        cols: Tensor,
        windows: List[Window],
    ) -> Tensor:
        by_pixel = features.permute(0, 2, 3, 1)  # (N, H, W, C), a view if channels-last
        if not by_pixel.is_contiguous():
            by_pixel = by_pixel.contiguous()
        _, height, width, channels = by_pixel.shape
        out_h, out_w = rows.shape[1], cols.shape[1]
        pooled = by_pixel.new_empty(len(windows), out_h, out_w, channels)
        views = pooled.unbind(0)
        base, row_base, col_base = (t.storage_offset() for t in (by_pixel, rows, cols))
        for k, (image, y, h, x, w) in enumerate(windows):
            if not (h and w):
                views[k].zero_()
                continue
            start = base + ((image * height + y) * width + x) * channels
            window = by_pixel.as_strided((h, w * channels), (width * channels, 1), start)
            row_k = rows.as_strided((out_h, h), (height, 1), row_base + k * out_h * height + y)
            # the RoI's column weights, the same for every output row
            col_k = cols.as_strided(
                (out_h, out_w, w), (0, width, 1), col_base + k * out_w * width + x
            )
            sampled = torch.mm(row_k, window).view(out_h, w, channels)
            torch.bmm(col_k, sampled, out=views[k])
        ctx.save_for_backward(rows, cols)
        ctx.windows, ctx.shape = windows, by_pixel.shape
        return pooled.permute(0, 3, 1, 2)  # (K, C, out_h, out_w), channels-last

    @staticmethod
    @torch.compiler.disable  # the engine calls it inside compiled code too (see roi_align)
    def backward(ctx, grad_pooled: Tensor):  # noqa: ANN001, ANN205 - autograd's API
        rows, cols = ctx.saved_tensors
        images, height, width, channels = ctx.shape
        by_pixel = grad_pooled.permute(0, 2, 3, 1).contiguous()  # (K, out_h, out_w, C)
        grad = by_pixel.new_zeros(images, height, width, channels)
        out_h, out_w = rows.shape[1], cols.shape[1]
        row_base, col_base = rows.storage_offset(), cols.storage_offset()
        for k, (image, y, h, x, w) in enumerate(ctx.windows):
            if not (h and w):
                continue
            # the columns' product transposed: (out_h, w, out_w) @ (out_h, out_w, C)
            col_k = cols.as_strided(
                (out_h, w, out_w), (0, 1, width), col_base + k * out_w * width + x
            )
            sampled = torch.bmm(col_k, by_pixel[k]).view(out_h, w * channels)
            # then the rows', added in place into the RoI's window of the gradient
            start = ((image * height + y) * width + x) * channels
            window = grad.as_strided((h, w * channels), (width * channels, 1), start)
            row_k = rows.as_strided((h, out_h), (1, height), row_base + k * out_h * height + y)
            window.addmm_(row_k, sampled)
        return grad.permute(0, 3, 1, 2), None, None, None


# Runs eagerly inside compiled code (``tools/train.py --compile``): its windows are read
# from the RoIs and looped over in Python, so dynamo would specialise on every RoI set and
# recompile each step until its limit (a compiled Mask R-CNN step spent minutes there).
@torch.compiler.disable
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
    features' dtype (autocast's, under autocast), channels-last in memory. RoIs are not
    differentiated. Off the CPU, mmcv's kernel computes it (one GPU launch for all RoIs)."""
    if features.dim() != 4 or rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(
            'roi_align expects features (N, C, H, W) and rois (K, 5), got '
            f'{tuple(features.shape)} and {tuple(rois.shape)}'
        )
    out_h, out_w = _pair(output_size)
    if features.device.type != 'cpu':  # one launch per RoI would lose to mmcv's GPU kernel
        from mmcv.ops import roi_align as mmcv_roi_align

        return mmcv_roi_align(
            features.contiguous(),
            rois,
            (out_h, out_w),
            spatial_scale,
            sampling_ratio,
            'avg',
            aligned,
        )
    _, _, height, width = features.shape
    rois = rois.detach()
    with torch.no_grad():
        rows = axis_weights(
            rois[:, 2], rois[:, 4], height, out_h, spatial_scale, sampling_ratio, aligned
        )
        cols = axis_weights(
            rois[:, 1], rois[:, 3], width, out_w, spatial_scale, sampling_ratio, aligned
        )
        row_first, row_count = axis_windows(rows)
        col_first, col_count = axis_windows(cols)
        windows = torch.stack(
            [rois[:, 0].long(), row_first, row_count, col_first, col_count], 1
        ).tolist()
    device_type = features.device.type
    if autocast_enabled(device_type):
        features = features.to(autocast_dtype(device_type))
    rows = rows.to(features.dtype).contiguous()
    cols = cols.to(features.dtype).contiguous()
    return WindowedRoIAlign.apply(features, rows, cols, windows)


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
