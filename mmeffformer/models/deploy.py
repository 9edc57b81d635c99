"""Deploy mode: an inference-only rewrite of a backbone that gives the eval outputs.

``switch_to_deploy`` changes the model in place:

- every ``ConvNorm`` BatchNorm is folded into its convolution;
- every layer scale is folded into the layer that produces its input (a conv
  or linear whose rows are scaled by ``gamma``);
- the V1 pooling mixer ``x + g * (mean3x3(x) - x)`` becomes one depthwise box
  sum with ``g`` in the kernel and one fused multiply-add;
- DropPath is removed and the attention biases are frozen and precomputed for
  the sizes to serve.

Each rewrite is exact in real arithmetic; float32 results differ from eval by
rounding (tested within 1e-4 relative). Fusing conv + GELU into one oneDNN call
(a post-op) was tried and measured no faster here, so it is not done.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.nn.modules.batchnorm import _BatchNorm

from .backbones.efficientformer import AttentionBlock, PoolMixerBlock
from .backbones.efficientformer_v2 import FFNBlock
from .layers.attention_bias import _CachedBias
from .layers.conv_norm import ConvNorm
from .layers.layer_scale import LayerScale
from .layers.resampling import neighbour_count_map


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


class FusedPoolMixer(nn.Module):
    """``x + g * (mean3x3(x) - x)`` as ``(1 - g) * x + boxsum_g(x) / counts``."""

    def __init__(self, gamma: torch.Tensor) -> None:
        super().__init__()
        gamma = gamma.detach()
        self.register_buffer('kernel', gamma.view(-1, 1, 1, 1).repeat(1, 1, 3, 3).clone())
        self.register_buffer('keep', (1 - gamma).view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        total = F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=x.shape[1])
        inverse = neighbour_count_map(height, width, x.device, total.dtype).reciprocal()
        return torch.addcmul(x * self.keep.to(x.dtype), total, inverse)


def _scale_rows(layer: nn.Module, gamma: torch.Tensor) -> None:
    """Multiply the output channels of a conv / linear (or a ConvNorm's conv) by ``gamma``."""
    if isinstance(layer, ConvNorm):
        if not isinstance(layer.norm, nn.Identity) or not isinstance(layer.act, nn.Identity):
            raise RuntimeError('layer scale can only fold into a ConvNorm without norm and act')
        layer = layer.conv
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    with torch.no_grad():
        layer.weight.mul_(gamma.view(shape))
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(gamma))
        layer.bias.mul_(gamma)


def _fold_layer_scales(block: nn.Module) -> None:
    """Fold a block's ``ls1`` / ``ls2`` into the layers that feed them."""
    targets: Sequence[Tuple[str, Optional[nn.Module]]] = ()
    if isinstance(block, PoolMixerBlock):
        block.fused_mixer = FusedPoolMixer(block.ls1.gamma)
        block.ls1 = nn.Identity()
        targets = [('ls2', block.mlp.fc2)]
    elif isinstance(block, AttentionBlock):
        targets = [('ls1', block.attn.proj), ('ls2', block.mlp.fc2)]
    elif isinstance(block, FFNBlock):
        attn_proj = block.attn.proj if block.attn is not None else None
        targets = [('ls1', attn_proj), ('ls2', block.mlp.fc2)]
    for name, producer in targets:
        scale = getattr(block, name)
        if isinstance(scale, LayerScale) and producer is not None:
            _scale_rows(producer, scale.gamma.detach())
            setattr(block, name, nn.Identity())


def switch_to_deploy(model: nn.Module, sizes: Sequence[Tuple[int, int]] = ()) -> nn.Module:
    """Rewrite every EfficientFormer backbone inside ``model`` for inference.

    Works on a backbone or on any model holding one (a detector, a segmentor);
    precomputes the attention biases for the image ``sizes`` (H, W) to serve.
    Returns ``model``, changed in place and in eval mode; not reversible, and
    not trainable afterwards.
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, ConvNorm) and isinstance(module.norm, _BatchNorm):
            module.conv = fuse_conv_bn(module.conv, module.norm)
            module.norm = nn.Identity()
        for name, child in list(module.named_children()):
            if isinstance(child, DropPath):
                setattr(module, name, nn.Identity())
    for module in list(model.modules()):
        _fold_layer_scales(module)
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
