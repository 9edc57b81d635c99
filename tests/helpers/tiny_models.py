"""Tiny backbones and trained-like BatchNorm statistics shared by the tests."""

from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.models.layers import LayerScale

TINY_V1 = dict(widths=(8, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for bn in (m for m in model.modules() if isinstance(m, _BatchNorm)):
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
        bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.weight.data.copy_(1 + torch.randn(n, generator=gen) * 0.2)
        bn.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    for scale in (m for m in model.modules() if isinstance(m, LayerScale)):
        # trained scales are far from the 1e-5 init; random ones exercise the folding
        scale.gamma.data.copy_(torch.rand(scale.gamma.shape, generator=gen) * 0.5 + 0.1)
