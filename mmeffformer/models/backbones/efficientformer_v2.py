"""EfficientFormerV2 (s0 / s1 / s2 / l) as a multi-scale backbone for any input size."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmeffformer.registry import MODELS

from ..layers.attention import biased_attention
from ..layers.attention_bias import build_attention_bias
from ..layers.conv_norm import ConvNorm
from ..layers.layer_scale import LayerScale, fold_layer_scale
from ..layers.resampling import resize_bilinear
from .base import EfficientFormerBackboneBase, Stem, check_arch, drop_path_rates, run_block


class ConvMlp(nn.Sequential):
    """conv1x1 (C -> rC) + norm + act, depthwise 3x3 + norm + act, conv1x1 + norm."""

    def __init__(self, dim: int, hidden: int, norm_cfg: dict, act_cfg: dict) -> None:
        super().__init__()
        self.add_module('fc1', ConvNorm(dim, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg))
        self.add_module(
            'mid', ConvNorm(hidden, hidden, 3, groups=hidden, norm_cfg=norm_cfg, act_cfg=act_cfg)
        )
        self.add_module('fc2', ConvNorm(hidden, dim, 1, norm_cfg=norm_cfg))


class Attention2d(nn.Module):
    """Multi-head attention on NCHW maps with talking heads and a local value branch.

    With ``stride=2`` (stage 3) it attends on a depthwise-strided copy of the
    input and resizes the result back to the input's exact size (bilinear), so
    odd sizes work.
    """

    #: dtype of the logits, talking heads and softmax; None: the query's (set by
    #: reduced-precision deploy)
    logits_dtype: Optional[torch.dtype] = None
    #: the logits stay in the compute dtype: at 800x1216 they are 8 x 950 x 950 per block
    #: (8 x 950 x 3800 in the downsampling attention), and float32 logits with float32
    #: talking heads made v2-s0's compiled bf16 deploy 27% slower for a smaller error at
    #: stride 32 only (1.8e-2 to 1.2e-2 relative)
    float32_logits = False
    #: part a reduced-precision deploy keeps float32: the projection's output can outgrow
    #: the residual stream it joins (cheap: it runs on the stride-32 tokens)
    float32_parts = ('proj',)

    def __init__(
        self,
        dim: int,
        bias: nn.Module,
        norm_cfg: dict,
        act_cfg: dict,
        stride: int = 1,
        num_heads: int = 8,
        key_dim: int = 32,
        attn_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        value_channels = num_heads * key_dim * attn_ratio
        self.stride_conv = (
            ConvNorm(dim, dim, 3, stride, groups=dim, norm_cfg=norm_cfg) if stride > 1 else None
        )
        self.q = ConvNorm(dim, num_heads * key_dim, 1, norm_cfg=norm_cfg)
        self.k = ConvNorm(dim, num_heads * key_dim, 1, norm_cfg=norm_cfg)
        self.v = ConvNorm(dim, value_channels, 1, norm_cfg=norm_cfg)
        self.v_local = ConvNorm(
            value_channels, value_channels, 3, groups=value_channels, norm_cfg=norm_cfg
        )
        self.talking_head1 = nn.Conv2d(num_heads, num_heads, 1)
        self.talking_head2 = nn.Conv2d(num_heads, num_heads, 1)
        self.act = build_activation_layer(act_cfg)
        self.proj = ConvNorm(value_channels, dim, 1, norm_cfg=norm_cfg)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        batch, _, height, width = x.shape
        tokens = height * width
        q = self.q(x).view(batch, self.num_heads, -1, tokens).transpose(-2, -1)
        k = self.k(x).view(batch, self.num_heads, -1, tokens)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.view(batch, self.num_heads, -1, tokens).transpose(-2, -1)
        dtype = self.logits_dtype or q.dtype
        bias = self.bias((height, width), (height, width)).to(dtype)
        attn = (q.to(dtype) @ k.to(dtype)) * self.scale + bias
        attn = self.talking_head1(attn)
        # the softmax on a 3D view: XNNPACK in ExecuTorch 1.5 keeps a 1x1 conv's output
        # channels-last and takes a 4D softmax(dim=-1) of it over the heads instead
        attn = self.talking_head2(attn.flatten(0, 1).softmax(dim=-1).view(attn.shape))
        out = (attn.to(v.dtype) @ v).transpose(-2, -1).reshape(batch, -1, height, width) + v_local
        if self.stride_conv is not None:
            out = resize_bilinear(out, size)
        return self.proj(self.act(out))


class DownsampleAttention(nn.Module):
    """Attention that halves the resolution: half-grid queries attend to all keys.

    Queries are ``depthwise-conv3x3-s2(x) + x[::2, ::2]`` (the authors' 1x1
    stride-2 average pool); query ``(i, j)`` sits on key ``(2i, 2j)``.
    """

    #: dtype of the logits and softmax; None: the query's (set by reduced-precision deploy)
    logits_dtype: Optional[torch.dtype] = None
    #: logits in the compute dtype, a float32 projection (see :class:`Attention2d`)
    float32_logits = False
    float32_parts = ('proj',)

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: nn.Module,
        norm_cfg: dict,
        act_cfg: dict,
        num_heads: int = 8,
        key_dim: int = 16,
        attn_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        value_channels = num_heads * key_dim * attn_ratio
        self.q_local = nn.Conv2d(in_dim, in_dim, 3, stride=2, padding=1, groups=in_dim)
        self.q = ConvNorm(in_dim, num_heads * key_dim, 1, norm_cfg=norm_cfg)
        self.k = ConvNorm(in_dim, num_heads * key_dim, 1, norm_cfg=norm_cfg)
        self.v = ConvNorm(in_dim, value_channels, 1, norm_cfg=norm_cfg)
        self.v_local = ConvNorm(
            value_channels, value_channels, 3, 2, groups=value_channels, norm_cfg=norm_cfg
        )
        self.act = build_activation_layer(act_cfg)
        self.proj = ConvNorm(value_channels, out_dim, 1, norm_cfg=norm_cfg)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q = self.q(self.q_local(x) + x[:, :, ::2, ::2])
        q_height, q_width = q.shape[-2:]
        q = q.view(batch, self.num_heads, -1, q_height * q_width).transpose(-2, -1)
        k = self.k(x).view(batch, self.num_heads, -1, height * width).transpose(-2, -1)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.view(batch, self.num_heads, -1, height * width).transpose(-2, -1)
        bias = self.bias((q_height, q_width), (height, width)).to(self.logits_dtype or q.dtype)
        out = biased_attention(q, k, v, bias, self.scale)
        out = out.transpose(-2, -1).reshape(batch, -1, q_height, q_width) + v_local
        return self.proj(self.act(out))


class Downsample(nn.Module):
    """3x3 stride-2 conv + norm, plus a downsampling attention when given one."""

    def __init__(self, in_dim: int, out_dim: int, norm_cfg: dict, attn: Optional[nn.Module]):
        super().__init__()
        self.conv = ConvNorm(in_dim, out_dim, 3, 2, norm_cfg=norm_cfg)
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out if self.attn is None else out + self.attn(x)


class FFNBlock(nn.Module):
    """``x + ls1 * Attn(x)`` (attention blocks only), then ``x + ls2 * MLP(x)``."""

    #: parts computed in the deploy dtype around a float32 residual stream
    reduced_precision_branches = ('attn', 'mlp')

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        layer_scale_init_value: float,
        norm_cfg: dict,
        act_cfg: dict,
        attn: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.attn = attn
        self.ls1 = LayerScale(dim, layer_scale_init_value) if attn is not None else None
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), norm_cfg, act_cfg)
        self.ls2 = LayerScale(dim, layer_scale_init_value)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            x = x + self.drop_path(self.ls1(self.attn(x)))
        return x + self.drop_path(self.ls2(self.mlp(x)))

    def reparameterize(self) -> None:
        """Deploy rewrite: layer scales folded into ``attn.proj`` and ``fc2``, no DropPath."""
        if self.attn is not None and fold_layer_scale(self.attn.proj, self.ls1):
            self.ls1 = nn.Identity()
        if fold_layer_scale(self.mlp.fc2, self.ls2):
            self.ls2 = nn.Identity()
        self.drop_path = nn.Identity()


class EfficientFormerV2Stage(nn.Module):
    """Optional downsample, then conv blocks and, at the end, attention blocks."""

    def __init__(self, downsample: Optional[nn.Module], blocks: Sequence[nn.Module], with_cp: bool):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks:
            x = run_block(block, self.with_cp, x)
        return x


def _check_v2_arch(arch: str | dict, settings: dict) -> dict:
    arch = check_arch(arch, settings, ('widths', 'depths', 'num_attention', 'mlp_ratios'))
    depths = arch['depths']
    if not isinstance(arch['num_attention'], int) or not 0 <= arch['num_attention'] <= min(
        depths[2], depths[3]
    ):
        raise ValueError(
            f"arch['num_attention'] (attention blocks at the end of stages 3 and 4) must be an "
            f'int in 0..{min(depths[2], depths[3])}, got {arch["num_attention"]!r}'
        )
    ratios = arch['mlp_ratios']
    if len(ratios) != 4 or any(len(r) != d for r, d in zip(ratios, depths)):
        raise ValueError(
            f"arch['mlp_ratios'] must hold one list per stage with one ratio per block "
            f'(lengths {tuple(depths)}), got {ratios!r}'
        )
    return arch


@MODELS.register_module()
class EfficientFormerV2(EfficientFormerBackboneBase):
    """EfficientFormerV2 backbone: NCHW features at strides 4, 8, 16, 32.

    Unlike the authors' downstream code (H and W divisible by 32), it runs at any
    input size: strided convs give ``ceil(size / 2)``, the strided attention
    resizes back to the real input size and the downsampling attention uses the
    real query and key grids.

    Args:
        arch: ``'s0'``, ``'s1'``, ``'s2'``, ``'l'`` or a dict with ``widths``,
            ``depths``, ``num_attention`` (attention blocks at the end of stages 3
            and 4) and ``mlp_ratios`` (one list of ratios per stage).
        out_indices: Stages whose outputs are returned.
        norm_out: Add GroupNorm(1, C) to every output (off, as the authors).
        attn_bias: ``'relative'`` or ``'official'`` (see :class:`EfficientFormer`).
        attn_bias_size: Image side of the official tables (800 / 512).
        pretrain_size: Image side of the ImageNet pretraining (224).
        frozen_stages: -1 trains everything, 0 freezes the stem, k freezes the
            stem and stages 0..k-1.
        norm_eval: Keep every BatchNorm in eval mode (the authors' recipe does).
        norm_cfg: Norm of the conv layers.
        act_cfg: Activation everywhere, stem included (GELU).
        drop_path_rate: Stochastic depth; ``None`` takes the arch default
            (s0 0, s1 0, s2 0.02, l 0.1).
        layer_scale_init_value: Initial residual scale.
        with_cp: Gradient checkpointing per block.
        pretrained: mmseg's older way to say ``init_cfg=dict(type='Pretrained', ...)``.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='eformer_s0_450.pth')``.

    Example:
        >>> import torch
        >>> from mmeffformer.models import EfficientFormerV2
        >>> model = EfficientFormerV2('s0').eval()
        >>> for feature in model(torch.rand(1, 3, 97, 143)):
        ...     print(tuple(feature.shape))
        (1, 32, 25, 36)
        (1, 48, 13, 18)
        (1, 96, 7, 9)
        (1, 176, 4, 5)
    """

    family = 'v2'
    default_drop_path_rate = {'s0': 0.0, 's1': 0.0, 's2': 0.02, 'l': 0.1}
    arch_settings = {
        's0': dict(
            widths=(32, 48, 96, 176),
            depths=(2, 2, 6, 4),
            num_attention=2,
            mlp_ratios=([4] * 2, [4] * 2, [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]),
        ),
        's1': dict(
            widths=(32, 48, 120, 224),
            depths=(3, 3, 9, 6),
            num_attention=2,
            mlp_ratios=([4] * 3, [4] * 3, [4, 4, 3, 3, 3, 3, 4, 4, 4], [4, 4, 3, 3, 4, 4]),
        ),
        's2': dict(
            widths=(32, 64, 144, 288),
            depths=(4, 4, 12, 8),
            num_attention=4,
            mlp_ratios=(
                [4] * 4,
                [4] * 4,
                [4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4],
                [4, 4, 3, 3, 3, 3, 4, 4],
            ),
        ),
        'l': dict(
            widths=(40, 80, 192, 384),
            depths=(5, 5, 15, 10),
            num_attention=6,
            mlp_ratios=(
                [4] * 5,
                [4] * 5,
                [4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4],
                [4, 4, 4, 3, 3, 3, 3, 4, 4, 4],
            ),
        ),
    }

    def __init__(
        self,
        arch: str | dict = 's0',
        out_indices: Sequence[int] = (0, 1, 2, 3),
        norm_out: bool = False,
        attn_bias: str = 'relative',
        attn_bias_size: Optional[int] = None,
        pretrain_size: int = 224,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        norm_cfg: dict = dict(type='BN', requires_grad=True),
        act_cfg: dict = dict(type='GELU'),
        drop_path_rate: Optional[float] = None,
        layer_scale_init_value: float = 1e-5,
        with_cp: bool = False,
        init_cfg: Optional[dict] = None,
        pretrained: Optional[str] = None,
    ) -> None:
        super().__init__(out_indices, frozen_stages, norm_eval, with_cp, init_cfg, pretrained)
        settings = _check_v2_arch(arch, self.arch_settings)
        if drop_path_rate is None:
            drop_path_rate = (
                self.default_drop_path_rate.get(arch, 0.0) if isinstance(arch, str) else 0.0
            )
        self.arch = settings
        widths, depths = tuple(settings['widths']), tuple(settings['depths'])
        self.widths = widths
        self.attn_bias = attn_bias
        build_norm_layer(norm_cfg, widths[0])  # fail early on a bad norm_cfg

        def bias(key_stride: int, query_stride: int = 1) -> nn.Module:
            return build_attention_bias(
                attn_bias, 8, key_stride, pretrain_size, attn_bias_size, query_stride
            )

        self.stem = Stem(widths[0], norm_cfg, act_cfg)
        rates = drop_path_rates(depths, drop_path_rate)
        stages = []
        for index, (width, depth) in enumerate(zip(widths, depths)):
            downsample = None
            if index > 0:
                attn = None
                if index == 3:
                    attn = DownsampleAttention(
                        widths[2], width, bias(key_stride=16, query_stride=2), norm_cfg, act_cfg
                    )
                downsample = Downsample(widths[index - 1], width, norm_cfg, attn)
            first_attention = depth - settings['num_attention'] if index >= 2 else depth
            blocks = []
            for block_index in range(depth):
                attn = None
                if block_index >= first_attention:
                    # stage 3 attends at stride 32 through a strided conv
                    attn = Attention2d(
                        width, bias(key_stride=32), norm_cfg, act_cfg, stride=2 if index == 2 else 1
                    )
                blocks.append(
                    FFNBlock(
                        width,
                        settings['mlp_ratios'][index][block_index],
                        rates[index][block_index],
                        layer_scale_init_value,
                        norm_cfg,
                        act_cfg,
                        attn,
                    )
                )
            stages.append(EfficientFormerV2Stage(downsample, blocks, with_cp))
        self.stages = nn.ModuleList(stages)
        self._build_out_norms(widths, norm_out)
        self._finish_init()
