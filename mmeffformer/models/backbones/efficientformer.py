"""EfficientFormer (V1: l1 / l3 / l7) as a multi-scale backbone for any input size."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmeffformer.registry import MODELS
from mmeffformer.utils.export_mode import is_exporting

from ..layers.attention import biased_attention
from ..layers.attention_bias import build_attention_bias
from ..layers.conv_norm import ConvNorm
from ..layers.layer_scale import LayerScale, fold_layer_scale
from ..layers.resampling import MeanPool3x3, mean_pool3x3, neighbour_count_map
from .base import EfficientFormerBackboneBase, Stem, check_arch, drop_path_rates, run_block


class FusedPoolMixer(nn.Module):
    """Deploy form of ``x + g * (mean3x3(x) - x)``: ``(1 - g) * x + boxsum(g x / 9) * 9 / counts``.

    The kernel holds ``g / 9`` rather than ``g``: a plain 9-term sum of float16
    activations in the thousands overflows (measured: inf at 800x1216 with
    activations ~1e4), the mean does not; ``9 / counts`` (1, 1.5, 2.25) is exact.
    """

    def __init__(self, gamma: torch.Tensor) -> None:
        super().__init__()
        gamma = gamma.detach()
        kernel = (gamma / 9).view(-1, 1, 1, 1).repeat(1, 1, 3, 3)
        self.register_buffer('kernel', kernel.clone())
        self.register_buffer('keep', (1 - gamma).view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_exporting():  # same sum as below, with a pooling the runtimes size at run time
            gamma = self.kernel[:, :, :1, :1].reshape(1, -1, 1, 1) * 9
            return x * self.keep + gamma * mean_pool3x3(x)
        height, width = x.shape[-2:]
        total = F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=x.shape[1])
        counts = neighbour_count_map(height, width, x.device, torch.float32)
        return torch.addcmul(x * self.keep.to(x.dtype), total, (9 / counts).to(total.dtype))


class PoolMixerBlock(nn.Module):
    """4-D block: ``x + ls1 * (avgpool3x3(x) - x)``, then ``x + ls2 * MLP(x)``.

    The MLP is conv1x1 (C -> rC), norm, act, conv1x1 (rC -> C), norm.
    """

    #: parts computed in the deploy dtype around a float32 residual stream
    reduced_precision_branches = ('mlp',)

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        layer_scale_init_value: float,
        norm_cfg: dict,
        act_cfg: dict,
    ) -> None:
        super().__init__()
        # Border tokens average only real neighbours (count_include_pad=False).
        self.pool = MeanPool3x3()
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', ConvNorm(dim, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg))
        self.mlp.add_module('fc2', ConvNorm(hidden, dim, 1, norm_cfg=norm_cfg))
        self.ls1 = LayerScale(dim, layer_scale_init_value)
        self.ls2 = LayerScale(dim, layer_scale_init_value)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.fused_mixer: Optional[nn.Module] = None  # set by deploy mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_mixer is not None:
            x = self.fused_mixer(x)
        else:
            x = x + self.drop_path(self.ls1(self.pool(x) - x))
        return x + self.drop_path(self.ls2(self.mlp(x)))

    def reparameterize(self) -> None:
        """Deploy rewrite: fused pool mixer, ``ls2`` folded into ``fc2``, no DropPath."""
        if isinstance(self.ls1, LayerScale):
            self.fused_mixer = FusedPoolMixer(self.ls1.gamma)
            self.ls1 = nn.Identity()
        if fold_layer_scale(self.mlp.fc2, self.ls2):
            self.ls2 = nn.Identity()
        self.drop_path = nn.Identity()


class TokenAttention(nn.Module):
    """Multi-head self-attention on (B, N, C) tokens with a 2-D offset bias.

    One linear gives per head a 32-d query, 32-d key and 128-d value.
    """

    #: dtype of the logits and softmax; None: the query's (set by reduced-precision deploy)
    logits_dtype: Optional[torch.dtype] = None
    #: a float32-stream deploy keeps the logits float32: cheap here (the last stage's
    #: blocks, on the stride-32 tokens), and bf16 logits of magnitude L are off by L / 256
    float32_logits = True

    def __init__(
        self,
        dim: int,
        bias: nn.Module,
        num_heads: int = 8,
        key_dim: int = 32,
        attn_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = key_dim * attn_ratio
        self.scale = key_dim**-0.5
        self.qkv = nn.Linear(dim, num_heads * (2 * key_dim + self.value_dim))
        self.proj = nn.Linear(num_heads * self.value_dim, dim)
        self.bias = bias

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).view(batch, tokens, self.num_heads, -1).transpose(1, 2)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        bias = self.bias(grid, grid).to(self.logits_dtype or q.dtype)
        out = biased_attention(q, k, v, bias, self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class AttentionBlock(nn.Module):
    """3-D block: ``x + ls1 * Attn(LN(x))``, then ``x + ls2 * MLP(LN(x))``."""

    #: parts computed in the deploy dtype around a float32 residual stream
    reduced_precision_branches = ('attn', 'mlp')

    def __init__(
        self,
        dim: int,
        bias: nn.Module,
        mlp_ratio: float,
        drop_path: float,
        layer_scale_init_value: float,
        act_cfg: dict,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, bias)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', build_activation_layer(act_cfg))
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))
        self.ls1 = LayerScale(dim, layer_scale_init_value, channels_first=False)
        self.ls2 = LayerScale(dim, layer_scale_init_value, channels_first=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), grid)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def reparameterize(self) -> None:
        """Deploy rewrite: layer scales folded into ``attn.proj`` and ``fc2``, no DropPath."""
        if fold_layer_scale(self.attn.proj, self.ls1):
            self.ls1 = nn.Identity()
        if fold_layer_scale(self.mlp.fc2, self.ls2):
            self.ls2 = nn.Identity()
        self.drop_path = nn.Identity()


class EfficientFormerStage(nn.Module):
    """Optional strided-conv downsample, pool blocks, then attention blocks.

    Attention blocks run on flattened tokens; the stage returns NCHW.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        num_attention: int,
        downsample: bool,
        drop_paths: Sequence[float],
        mlp_ratio: float,
        layer_scale_init_value: float,
        norm_cfg: dict,
        act_cfg: dict,
        bias_kwargs: dict,
        with_cp: bool,
    ) -> None:
        super().__init__()
        self.downsample = ConvNorm(in_dim, dim, 3, 2, norm_cfg=norm_cfg) if downsample else None
        self.with_cp = with_cp
        self.num_pool_blocks = depth - num_attention
        blocks = []
        for index in range(depth):
            if index < self.num_pool_blocks:
                block = PoolMixerBlock(
                    dim, mlp_ratio, drop_paths[index], layer_scale_init_value, norm_cfg, act_cfg
                )
            else:
                bias = build_attention_bias(num_heads=8, key_stride=32, **bias_kwargs)
                block = AttentionBlock(
                    dim, bias, mlp_ratio, drop_paths[index], layer_scale_init_value, act_cfg
                )
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks[: self.num_pool_blocks]:
            x = run_block(block, self.with_cp, x)
        if self.num_pool_blocks == len(self.blocks):
            return x
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks[self.num_pool_blocks :]:
            tokens = run_block(block, self.with_cp, tokens, (height, width))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


@MODELS.register_module()
class EfficientFormer(EfficientFormerBackboneBase):
    """EfficientFormer (V1) backbone: NCHW features at strides 4, 8, 16, 32.

    Runs at any input size: every stage follows conv arithmetic (3x3, stride 2,
    padding 1, i.e. ``ceil(size / 2)``), and the attention bias is computed for
    the actual token grid (see :mod:`mmeffformer.models.layers.attention_bias`).

    Args:
        arch: ``'l1'``, ``'l3'``, ``'l7'`` or a dict with ``widths`` (4 ints),
            ``depths`` (4 ints) and ``num_attention`` (attention blocks at the end
            of stage 4).
        out_indices: Stages whose outputs are returned.
        norm_out: Add GroupNorm(1, C) to every output (the authors' recipe).
        attn_bias: ``'relative'`` (pretrained offset table, resized per grid) or
            ``'official'`` (the authors' downstream bias, for their checkpoints).
        attn_bias_size: Image side the official table is learned for: 800
            (detection) or 512 (segmentation). Only used in official mode.
        pretrain_size: Image side of the ImageNet pretraining (224).
        frozen_stages: -1 trains everything, 0 freezes the stem, k freezes the
            stem and stages 0..k-1 (kept in eval mode, also after ``train()``).
        norm_eval: Keep every BatchNorm (SyncBN included) in eval mode.
        norm_cfg: Norm of the conv layers (BN, SyncBN, GN, ...).
        act_cfg: Activation of the stem (ReLU) is fixed by the architecture;
            this is the MLP activation (GELU).
        drop_path_rate: Stochastic depth, rising linearly over all blocks.
        layer_scale_init_value: Initial residual scale.
        mlp_ratio: MLP expansion ratio.
        with_cp: Gradient checkpointing per block (saves memory, same results).
        pretrained: mmseg's older way to say ``init_cfg=dict(type='Pretrained', ...)``.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='l1.pth')``; the
            authors', timm, mmpretrain and our layouts load without conversion.

    Example:
        >>> import torch
        >>> from mmeffformer.models import EfficientFormer
        >>> model = EfficientFormer('l1').eval()
        >>> for feature in model(torch.rand(1, 3, 97, 143)):
        ...     print(tuple(feature.shape))
        (1, 48, 25, 36)
        (1, 96, 13, 18)
        (1, 224, 7, 9)
        (1, 448, 4, 5)
    """

    family = 'v1'
    arch_settings = {
        'l1': dict(widths=(48, 96, 224, 448), depths=(3, 2, 6, 4), num_attention=1),
        'l3': dict(widths=(64, 128, 320, 512), depths=(4, 4, 12, 6), num_attention=4),
        'l7': dict(widths=(96, 192, 384, 768), depths=(6, 6, 18, 8), num_attention=8),
    }

    def __init__(
        self,
        arch: str | dict = 'l1',
        out_indices: Sequence[int] = (0, 1, 2, 3),
        norm_out: bool = True,
        attn_bias: str = 'relative',
        attn_bias_size: Optional[int] = None,
        pretrain_size: int = 224,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        norm_cfg: dict = dict(type='BN', requires_grad=True),
        act_cfg: dict = dict(type='GELU'),
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-5,
        mlp_ratio: float = 4.0,
        with_cp: bool = False,
        init_cfg: Optional[dict] = None,
        pretrained: Optional[str] = None,
    ) -> None:
        super().__init__(out_indices, frozen_stages, norm_eval, with_cp, init_cfg, pretrained)
        settings = check_arch(arch, self.arch_settings, ('widths', 'depths', 'num_attention'))
        widths, depths = tuple(settings['widths']), tuple(settings['depths'])
        num_attention = settings['num_attention']
        if not isinstance(num_attention, int) or not 0 <= num_attention <= depths[3]:
            raise ValueError(
                f"arch['num_attention'] must be an int in 0..{depths[3]} (stage-4 depth), "
                f'got {num_attention!r}'
            )
        self.arch = settings
        self.widths = widths
        self.attn_bias = attn_bias
        bias_kwargs = dict(
            mode=attn_bias, pretrain_size=pretrain_size, official_size=attn_bias_size
        )
        build_norm_layer(norm_cfg, widths[0])  # fail early on a bad norm_cfg

        self.stem = Stem(widths[0], norm_cfg, dict(type='ReLU'))
        rates = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList(
            EfficientFormerStage(
                in_dim=widths[max(index - 1, 0)],
                dim=widths[index],
                depth=depths[index],
                num_attention=num_attention if index == 3 else 0,
                downsample=index > 0,
                drop_paths=rates[index],
                mlp_ratio=mlp_ratio,
                layer_scale_init_value=layer_scale_init_value,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                bias_kwargs=bias_kwargs,
                with_cp=with_cp,
            )
            for index in range(4)
        )
        self._build_out_norms(widths, norm_out)
        self._finish_init()
