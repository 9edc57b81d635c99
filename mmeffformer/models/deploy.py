"""Deploy mode: fold BatchNorms into convolutions, precompute biases, drop training-only parts."""

from __future__ import annotations

from typing import Iterable, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from torch.nn.modules.batchnorm import _BatchNorm

from .layers.attention_bias import _CachedBias
from .layers.conv_norm import ConvNorm


def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """A convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    ).to(conv.weight)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def switch_to_deploy(model: nn.Module, sizes: Sequence[Tuple[int, int]] = ()) -> nn.Module:
    """Fold every ``ConvNorm``'s BatchNorm into its conv (exact in eval mode), replace
    DropPath by identities, and precompute the attention biases for the image
    ``sizes`` (H, W) the model will serve. Works on a backbone or any model
    holding one; returns ``model`` (changed in place, in eval mode).
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, ConvNorm) and isinstance(module.norm, _BatchNorm):
            module.conv = fuse_conv_bn(module.conv, module.norm)
            module.norm = nn.Identity()
        for name, child in list(module.named_children()):
            if isinstance(child, DropPath):
                setattr(module, name, nn.Identity())
    biases: Iterable[_CachedBias] = [m for m in model.modules() if isinstance(m, _CachedBias)]
    for bias in biases:
        bias.table.requires_grad_(False)  # a deployed model is not trained: always cache
    backbones = [m for m in model.modules() if hasattr(m, 'stages') and hasattr(m, 'stem')]
    with torch.no_grad():
        for backbone in backbones:
            device = next(backbone.parameters()).device
            for height, width in sizes:
                backbone(torch.zeros(1, 3, height, width, device=device))
    return model
