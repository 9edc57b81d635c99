"""Attention biases over 2-D token grids, at any grid size.

Both EfficientFormer generations add a learned bias to the attention logits that
depends on the offset ``(|dy|, |dx|)`` between a query and a key. The tables are
learned at a fixed grid, so a dense-prediction backbone has to decide what to do
at other grids. Two modes are offered:

``relative`` (:class:`RelativeOffsetBias`)
    One table of shape ``(heads, R * R)`` indexed by ``|dy| * R + |dx|`` for the
    pretraining grid of ``R x R`` keys: exactly the ImageNet parameter, so
    pretrained biases load and are used. At another grid the table is viewed as
    an ``R x R`` image over (|dy|, |dx|) and resized bicubically
    (``align_corners=True``, so offset 0 and the largest offset map onto each
    other) to ``(max|dy| + 1) x (max|dx| + 1)``; each axis is resized on its own,
    which keeps non-square grids right. The bias of a pair then depends only on
    its offset, and at the pretraining grid the table is used unchanged.

``official`` (:class:`OfficialResizedBias`)
    The authors' downstream behaviour, kept so that their released COCO / ADE20K
    checkpoints give identical outputs: a table for a fixed square grid (e.g.
    800 / 32 = 25 tokens a side), gathered into the dense ``(Nq0, Nk0)`` matrix
    and resized bicubically (``align_corners=False``) as one image to the
    runtime ``(Nq, Nk)``. This is only geometrically meaningful for square inputs
    of the training size; it is what those checkpoints were trained with.

Queries may live on a coarser grid than keys (EfficientFormerV2's downsampling
attention): query ``(qy, qx)`` sits on key ``(s * qy, s * qx)`` for query stride
``s``.

In eval mode the gathered bias is cached per (query grid, key grid, device,
dtype). The cache is dropped by ``train()``, by loading weights and by moving the
module, and an entry is only used while the table's version counter is the one
it was computed from, so an in-place update of the table can never be served a
stale bias.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmeffformer.utils.export_mode import is_exporting
from mmeffformer.utils.token_offsets import (
    GridSize,
    first_appearance_offset_index,
    offset_components,
)
from mmeffformer.utils.torch_features import is_compiling

from .resampling import resize_bicubic_by_gathers


def _known(*sizes) -> bool:
    """Whether every size is a number now, not a symbol of ``torch.export``."""
    return not any(isinstance(n, torch.SymInt) for n in sizes)


def _largest_offset(query_stride: int, query_side, key_side):
    """The largest ``|query_stride * i - j|`` over a query side and a key side.

    With symbolic sizes (torch.export) it is the key side's: the query grid of a strided
    attention is ``ceil(key / stride)``, so its strided positions never pass the last key.
    The symbolic solver cannot prove that of the floor divisions that make the grids, and a
    max op would enter the program (ExecuTorch's edge dialect takes none), so it is taken
    as given there; the exported programs are checked against the eager model, which
    computes the max.
    """
    if _known(query_side, key_side):
        return max(query_stride * (query_side - 1), key_side - 1)
    return key_side - 1


class _CachedBias(nn.Module):
    """Base class: computes ``(heads, Nq, Nk)`` biases, cached in eval mode."""

    table: nn.Parameter

    def __init__(self) -> None:
        super().__init__()
        self._cache: Dict[tuple, Tuple[int, torch.Tensor]] = {}
        #: dtype the bias is served in (reduced-precision deploy); computed in the table's
        self.output_dtype: Optional[torch.dtype] = None

    def compute(self, query_grid: GridSize, key_grid: GridSize) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query_grid: GridSize, key_grid: GridSize) -> torch.Tensor:
        """Bias of shape ``(heads, Nq, Nk)`` for the given grids."""
        query_grid, key_grid = tuple(query_grid), tuple(key_grid)
        needs_grad = torch.is_grad_enabled() and self.table.requires_grad
        frozen = not (self.training or self.table.requires_grad)
        if is_compiling() and frozen and _known(*query_grid, *key_grid):
            # a deployed table: the graph reads the served size's cached bias (filled by an
            # eager call) as a constant; computed in the graph, its resize would run per call
            hit = self._cache.get(self._cache_key(query_grid, key_grid, inference=False))
            if hit is not None:
                return hit[1]
        if self.training or needs_grad or torch.jit.is_tracing() or is_compiling():
            # in a traced or compiled graph the bias is part of the graph
            return self.compute(query_grid, key_grid)
        key = self._cache_key(query_grid, key_grid, torch.is_inference_mode_enabled())
        version = self.table._version
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        with torch.no_grad():
            bias = self.compute(query_grid, key_grid)
        if self.output_dtype is not None:
            bias = bias.to(self.output_dtype)
        self._cache[key] = (version, bias)
        return bias

    def _cache_key(self, query_grid: tuple, key_grid: tuple, inference: bool) -> tuple:
        return (query_grid, key_grid, self.table.device, self.table.dtype, inference)

    def reparameterize(self) -> None:
        """Deploy rewrite: the table is frozen, so every served bias comes from the cache."""
        self.table.requires_grad_(False)

    def clear_cache(self) -> None:
        self._cache.clear()

    def train(self, mode: bool = True) -> _CachedBias:
        self.clear_cache()
        return super().train(mode)

    def _apply(self, *args, **kwargs):
        self.clear_cache()
        return super()._apply(*args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.clear_cache()
        super()._load_from_state_dict(*args, **kwargs)


class RelativeOffsetBias(_CachedBias):
    """Learnable ``(|dy|, |dx|)`` table at the pretraining grid, resized per grid.

    Args:
        num_heads: Attention heads.
        pretrain_grid: Key grid side ``R`` of the pretraining resolution (7 for
            224 px at stride 32, 14 for the V2 downsampling attention's keys).
        query_stride: Key-grid step between neighbouring queries.

    Example:
        >>> bias = RelativeOffsetBias(num_heads=8, pretrain_grid=7)
        >>> bias((5, 9), (5, 9)).shape
        torch.Size([8, 45, 45])
    """

    def __init__(self, num_heads: int, pretrain_grid: int, query_stride: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pretrain_grid = pretrain_grid
        self.query_stride = query_stride
        self.table = nn.Parameter(torch.zeros(num_heads, pretrain_grid * pretrain_grid))

    def offset_table(self, max_dy: int, max_dx: int) -> torch.Tensor:
        """The table resized to cover offsets ``0..max_dy`` x ``0..max_dx``."""
        side = self.pretrain_grid
        table = self.table.view(self.num_heads, side, side)
        if _known(max_dy, max_dx) and (max_dy + 1, max_dx + 1) == (side, side):
            return table
        if not _known(max_dy, max_dx):
            # symbolic sizes (torch.export): aten's bicubic decomposition turns them into
            # float symbols, which ExecuTorch does not take; the same resize by gathers
            return resize_bicubic_by_gathers(table, (max_dy + 1, max_dx + 1), align_corners=True)
        resized = F.interpolate(
            table.unsqueeze(0), size=(max_dy + 1, max_dx + 1), mode='bicubic', align_corners=True
        )
        return resized.squeeze(0)

    def compute(self, query_grid: GridSize, key_grid: GridSize) -> torch.Tensor:
        dy, dx = offset_components(query_grid, key_grid, self.query_stride, self.table.device)
        if is_exporting() and _known(*query_grid, *key_grid):
            # grid sizes are traced: the table is resized to a size computed in the graph
            # (at the pretraining grid that resize is the identity)
            max_dx = dx.max()
            size = (dy.max() + 1, max_dx + 1)
            table = F.interpolate(
                self.table.view(1, self.num_heads, self.pretrain_grid, self.pretrain_grid),
                size=size,
                mode='bicubic',
                align_corners=True,
            ).flatten(1, -1)
            table = table.view(self.num_heads, -1)
        else:
            # the largest offsets, from the grid sizes (no tensor read: compiles as one graph)
            max_dy, max_dx = (
                _largest_offset(self.query_stride, q, k) for q, k in zip(query_grid, key_grid)
            )
            table = self.offset_table(max_dy, max_dx).flatten(1)
        return table[:, dy * (max_dx + 1) + dx]


class OfficialResizedBias(_CachedBias):
    """The authors' downstream bias: dense matrix of a fixed grid, resized to (Nq, Nk).

    Args:
        num_heads: Attention heads.
        key_grid: Side of the square key grid the table is learned for
            (``ceil(attn_bias_size / stride)``).
        query_stride: 1 for self-attention, 2 for the V2 downsampling attention,
            whose query grid is then ``ceil(key_grid / 2)``.

    Example:
        >>> bias = OfficialResizedBias(num_heads=8, key_grid=25)
        >>> bias.table.shape, bias((20, 30), (20, 30)).shape
        (torch.Size([8, 625]), torch.Size([8, 600, 600]))
    """

    def __init__(self, num_heads: int, key_grid: int, query_stride: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_grid = key_grid
        self.query_stride = query_stride
        query_grid = math.ceil(key_grid / query_stride)
        # The authors map query q onto key ceil(R / R_q) * q; equal to the
        # stride for the even grids the recipes use.
        effective_stride = math.ceil(key_grid / query_grid)
        index, num_offsets = first_appearance_offset_index(
            (query_grid, query_grid), (key_grid, key_grid), effective_stride
        )
        self.table = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer('index', index, persistent=False)

    def compute(self, query_grid: GridSize, key_grid: GridSize) -> torch.Tensor:
        dense = self.table[:, self.index]
        size = (query_grid[0] * query_grid[1], key_grid[0] * key_grid[1])
        if is_exporting():  # the same resize, sized in the graph (see the function)
            return resize_bicubic_by_gathers(dense, size)
        if tuple(dense.shape[1:]) == size:
            return dense  # bicubic resizing to the same size is the identity
        resized = F.interpolate(dense.unsqueeze(0), size=size, mode='bicubic', align_corners=False)
        return resized.squeeze(0)


ATTN_BIAS_MODES = ('relative', 'official')


def build_attention_bias(
    mode: str,
    num_heads: int,
    key_stride: int,
    pretrain_size: int,
    official_size: int | None,
    query_stride: int = 1,
) -> _CachedBias:
    """Build the bias of an attention whose keys are at ``key_stride``.

    Args:
        mode: ``'relative'`` or ``'official'``.
        num_heads: Attention heads.
        key_stride: Stride of the key grid w.r.t. the image (16 or 32).
        pretrain_size: Image side of the pretraining resolution (224).
        official_size: Image side the official table is learned for (800 for
            the detection recipes, 512 for segmentation); needed in official mode.
        query_stride: Key-grid step between neighbouring queries.
    """
    if mode == 'relative':
        return RelativeOffsetBias(num_heads, math.ceil(pretrain_size / key_stride), query_stride)
    if mode == 'official':
        if not isinstance(official_size, int) or official_size < key_stride:
            raise ValueError(
                f"attn_bias='official' needs attn_bias_size, the image side the table is "
                f'learned for (800 for detection, 512 for segmentation); got {official_size!r}'
            )
        return OfficialResizedBias(num_heads, math.ceil(official_size / key_stride), query_stride)
    raise ValueError(f'attn_bias must be one of {ATTN_BIAS_MODES}, got {mode!r}')
