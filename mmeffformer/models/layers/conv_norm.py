"""Convolution followed by a normalisation layer and an optional activation."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer


class ConvNorm(nn.Module):
    """``conv -> norm [-> act]`` with fixed child names ``conv``, ``norm``, ``act``.

    Fixed names keep checkpoint keys independent of the norm type (mmcv's
    ``ConvModule`` names the norm ``bn`` or ``gn`` after its type).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
        )
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = build_activation_layer(act_cfg) if act_cfg else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))
