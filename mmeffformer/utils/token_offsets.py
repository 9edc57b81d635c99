"""The query-key offsets of a token grid, numbered as the authors number their bias tables.

Shared by the attention biases (which gather their tables with it) and checkpoint
conversion (which checks a stored index against it).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

GridSize = Tuple[int, int]


def first_appearance_offset_index(
    query_grid: GridSize, key_grid: GridSize, query_stride: int = 1
) -> Tuple[torch.Tensor, int]:
    """Index of each (query, key) offset, numbered in order of first appearance.

    This reproduces how the authors number the table entries: walk all
    (query, key) pairs in row-major order and give each new offset
    ``(|s * qy - ky|, |s * qx - kx|)`` the next number.

    Returns:
        ``(index, num_offsets)`` with ``index`` of shape ``(Nq, Nk)``.
    """
    offsets: Dict[Tuple[int, int], int] = {}
    rows = []
    for qy in range(query_grid[0]):
        for qx in range(query_grid[1]):
            row = []
            for ky in range(key_grid[0]):
                for kx in range(key_grid[1]):
                    offset = (abs(query_stride * qy - ky), abs(query_stride * qx - kx))
                    row.append(offsets.setdefault(offset, len(offsets)))
            rows.append(row)
    return torch.tensor(rows, dtype=torch.long), len(offsets)


def offset_components(
    query_grid: GridSize, key_grid: GridSize, query_stride: int, device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(|dy|, |dx|)`` for every (query, key) pair, each of shape ``(Nq, Nk)``."""
    qy, qx = torch.meshgrid(
        torch.arange(query_grid[0], device=device) * query_stride,
        torch.arange(query_grid[1], device=device) * query_stride,
        indexing='ij',
    )
    ky, kx = torch.meshgrid(
        torch.arange(key_grid[0], device=device),
        torch.arange(key_grid[1], device=device),
        indexing='ij',
    )
    dy = (qy.reshape(-1, 1) - ky.reshape(1, -1)).abs()
    dx = (qx.reshape(-1, 1) - kx.reshape(1, -1)).abs()
    return dy, dx
