"""Per-channel learnable residual scaling."""

from __future__ import annotations

import torch
import torch.nn as nn


class LayerScale(nn.Module):
    """Multiply by a learnable vector ``gamma`` of shape ``(C,)``.

    Args:
        dim: Number of channels ``C``.
        init_value: Initial value of every entry.
        channels_first: Inputs are NCHW (scale dim 1) instead of (B, N, C).
    """

    def __init__(self, dim: int, init_value: float = 1e-5, channels_first: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:
            return x * self.gamma.view(1, -1, 1, 1)
        return x * self.gamma
