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


def fold_layer_scale(producer: nn.Module, scale: nn.Module) -> bool:
    """Multiply the output channels of ``producer`` (a conv, a linear, or a ``ConvNorm``
    whose norm is already folded) by ``scale.gamma``; returns False when ``scale`` is
    not a :class:`LayerScale` (already folded) or there is no producer."""
    if not isinstance(scale, LayerScale) or producer is None:
        return False
    layer = producer
    if hasattr(layer, 'reparameterize'):  # a ConvNorm: its BatchNorm is folded first
        layer.reparameterize()
    if hasattr(layer, 'conv') and hasattr(layer, 'norm'):
        if not isinstance(layer.norm, nn.Identity) or not isinstance(layer.act, nn.Identity):
            raise RuntimeError('layer scale can only fold into a ConvNorm without norm and act')
        layer = layer.conv
    gamma = scale.gamma.detach()
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    with torch.no_grad():
        layer.weight.mul_(gamma.view(shape))
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(gamma))
        layer.bias.mul_(gamma)
    return True
