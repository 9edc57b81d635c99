"""What both EfficientFormer backbones share: freezing, norm_eval, outputs, weights."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.utils.torch_features import (
    UnsupportedTorchFeatureError,
    autocast_dtype,
    autocast_enabled,
    has_cpu_float16_convolution,
)

from ..deploy_mode import switch_to_deploy
from ..layers.attention_bias import _CachedBias
from ..layers.conv_norm import ConvNorm
from ..layers.mixed_precision import (
    Float32Norm,
    ReducedPrecisionBranch,
    cast_floating_point,
    check_deploy_dtype,
)

NUM_STAGES = 4


def normalize_out_indices(out_indices: Sequence[int] | int) -> Tuple[int, ...]:
    """Check ``out_indices`` and turn negative indices into stage numbers."""
    if isinstance(out_indices, int):
        out_indices = (out_indices,)
    result = []
    for index in out_indices:
        if not isinstance(index, int) or not -NUM_STAGES <= index < NUM_STAGES:
            raise ValueError(
                f'out_indices entries must be stage numbers in 0..3 (or -4..-1), '
                f'got {index!r} in {tuple(out_indices)!r}'
            )
        result.append(index % NUM_STAGES)
    if len(set(result)) != len(result) or not result:
        raise ValueError(f'out_indices must be non-empty and distinct, got {tuple(out_indices)!r}')
    return tuple(sorted(result))


def drop_path_rates(depths: Sequence[int], drop_path_rate: float) -> List[List[float]]:
    """Stochastic depth rising linearly from 0 to ``drop_path_rate`` over all blocks."""
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start : start + depth])
        start += depth
    return out


def run_block(block: Callable, with_cp: bool, *args) -> torch.Tensor:
    """Call ``block``, through gradient checkpointing when asked and useful."""
    if (
        with_cp
        and torch.is_grad_enabled()
        and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    ):
        return cp.checkpoint(block, *args, use_reentrant=False)
    return block(*args)


class Stem(nn.Module):
    """Two 3x3 stride-2 conv-norm-act layers: stride 4, ``C0 / 2`` then ``C0`` channels."""

    def __init__(self, out_dim: int, norm_cfg: dict, act_cfg: dict, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, out_dim // 2, 3, 2, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvNorm(out_dim // 2, out_dim, 3, 2, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def check_arch(arch: str | dict, settings: dict, required: Sequence[str]) -> dict:
    """Resolve ``arch`` to a settings dict; errors say what is accepted."""
    if isinstance(arch, str):
        if arch not in settings:
            raise ValueError(
                f'Unknown arch {arch!r}; choose from {sorted(settings)} or pass a dict '
                f'with keys {sorted(required)}'
            )
        return dict(settings[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name {sorted(settings)} or a dict, got {type(arch)}')
    if set(arch) != set(required):
        raise ValueError(
            f'An arch dict needs exactly the keys {sorted(required)}, got {sorted(arch)}'
        )
    for key in ('widths', 'depths'):
        values = arch[key]
        if len(values) != 4 or not all(isinstance(v, int) and v > 0 for v in values):
            raise ValueError(f'arch[{key!r}] must be 4 positive ints, got {values!r}')
    return dict(arch)


class EfficientFormerBackboneBase(BaseModule):
    """Base class: subclasses build ``stem`` and ``stages`` and call ``_finish_init``.

    It owns the per-output norms (``out_norms``), ``frozen_stages``,
    ``norm_eval`` and loading of pretrained weights in any supported layout.
    """

    stem: nn.Module
    stages: nn.ModuleList
    #: 'v1' or 'v2': which checkpoint layouts apply.
    family: str = ''

    def __init__(
        self,
        out_indices: Sequence[int] | int,
        frozen_stages: int,
        norm_eval: bool,
        with_cp: bool,
        init_cfg: Optional[dict | list],
        pretrained: Optional[str] = None,
    ) -> None:
        if pretrained is not None:
            # mmseg's EncoderDecoder passes its model-level `pretrained` this way
            if init_cfg is not None:
                raise ValueError(
                    f'Give either pretrained={pretrained!r} or init_cfg={init_cfg!r}, not both'
                )
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        self.out_indices = normalize_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= NUM_STAGES:
            raise ValueError(
                f'frozen_stages must be an int in -1..4 (-1: nothing, 0: stem, '
                f'k: stem and the first k stages), got {frozen_stages!r}'
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        #: dtype of a reduced-precision deploy (None: the parameters' own, layout as given)
        self.compute_dtype: Optional[torch.dtype] = None
        #: dtype of the residual stream in that deploy (float32 or ``compute_dtype``)
        self.residual_dtype: Optional[torch.dtype] = None

    def _build_out_norms(self, widths: Sequence[int], norm_out: bool) -> None:
        """GroupNorm(1, C) on each requested output, or identities."""
        norms = []
        for stage, width in enumerate(widths):
            if norm_out and stage in self.out_indices:
                norms.append(build_norm_layer(dict(type='GN', num_groups=1), width)[1])
            else:
                norms.append(nn.Identity())
        self.out_norms = nn.ModuleList(norms)

    def _finish_init(self) -> None:
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f'{type(self).__name__} expects images of shape (N, 3, H, W), got {tuple(x.shape)}'
            )
        if self.compute_dtype is None:
            return self._forward_stages(x)
        # deployed in a precision / layout of its own: convert once in, once out, except
        # under autocast to the same dtype, where the neck and heads compute in it anyway
        # and channels-last suits their convolutions and RoIAlign
        if self._autocast_to_compute_dtype(x.device.type):
            give_back = dict(dtype=self.compute_dtype, memory_format=torch.channels_last)
        else:
            channels_last = not x.is_contiguous() and x.is_contiguous(
                memory_format=torch.channels_last
            )
            layout = torch.channels_last if channels_last else torch.contiguous_format
            give_back = dict(dtype=x.dtype, memory_format=layout)
        x = x.to(dtype=self.compute_dtype, memory_format=torch.channels_last)
        with torch.autocast(x.device.type, enabled=False):
            outs = self._forward_stages(x)
        return tuple(out.to(**give_back) for out in outs)

    def _forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(self.out_norms[index](x))
            if index == self.out_indices[-1]:
                break
        return tuple(outs)

    def _autocast_to_compute_dtype(self, device_type: str) -> bool:
        return autocast_enabled(device_type) and autocast_dtype(device_type) == self.compute_dtype

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: List[nn.Module] = [self.stem]
        for index in range(self.frozen_stages):
            modules += [self.stages[index], self.out_norms[index]]
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> EfficientFormerBackboneBase:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def switch_to_deploy(
        self,
        sizes: Sequence[Tuple[int, int]] = (),
        dtype: Optional[torch.dtype] = None,
        float32_residual: bool = True,
    ) -> EfficientFormerBackboneBase:
        """Fold BatchNorms and layer scales, fuse the pool mixer, drop training-only
        parts, optionally compute in ``dtype`` (channels-last), and precompute biases
        for ``sizes``.

        See :func:`mmeffformer.models.deploy_mode.switch_to_deploy`; not reversible.
        """
        return switch_to_deploy(self, sizes, dtype, float32_residual=float32_residual)

    def check_precision(self, dtype: torch.dtype) -> None:
        """Raise a ValueError naming ``dtype`` (or the device) when it cannot be served."""
        check_deploy_dtype(dtype)
        device = next(self.parameters()).device
        if dtype == torch.float16 and device.type not in ('cpu', 'cuda'):
            raise ValueError(f'float16 deploy runs on cpu or cuda, not on {device.type}')
        if dtype == torch.float16 and device.type == 'cpu' and not has_cpu_float16_convolution():
            raise UnsupportedTorchFeatureError(
                f'float16 deploy on the CPU needs float16 CPU convolutions, which torch '
                f'{torch.__version__} lacks (tested with them: torch 2.13); use '
                f'dtype=torch.bfloat16 (--deploy-dtype bfloat16) or a newer torch'
            )

    def set_compute_precision(self, dtype: torch.dtype, float32_residual: bool = True) -> None:
        """Compute in ``dtype`` and channels-last; images and features keep the caller's
        dtype and layout, except under autocast to ``dtype``, where the features stay in
        ``dtype``, channels-last (what autocast would compute the neck in). Autocast does
        not reach inside: the deployed backbone computes in the precision set here.

        ``float32_residual``: the residual stream (every block's ``x`` in ``x + f(x)``,
        and the fused pool mixer, a per-channel blend of ``x``) stays float32, and so do
        the modules' ``float32_parts`` (EfficientFormerV2's attention projections) and,
        in attention classes with ``float32_logits`` (EfficientFormer's), the logits,
        their bias and softmax; the stem, downsamples, the branches ``f`` and the
        attention's ``q @ k`` inputs and ``attn @ v`` compute in ``dtype``. Rounding the
        stream to ``dtype`` at every block is what accumulates the error of a
        reduced-precision run, and rounded logits are what the softmax amplifies
        (``python -m benchmarks numeric_error`` measures both).

        Always kept in float32: the attention-bias tables, whose bicubic resize is
        computed once per size (served in ``dtype`` when the logits are), and
        LayerNorm / GroupNorm (see :class:`~..layers.mixed_precision.Float32Norm`).
        """
        self.check_precision(dtype)
        float32_stream = float32_residual and dtype != torch.float32
        always_float32 = (_CachedBias, nn.LayerNorm, nn.GroupNorm)
        if float32_stream:
            # float32 parts inside a branch are wrappers too: the cast skips them
            keep = always_float32 + (ReducedPrecisionBranch,)
            for branch in self._wrap_reduced_precision_branches(dtype):
                cast_floating_point(branch.module, dtype, keep=keep)
        else:
            cast_floating_point(self, dtype, keep=always_float32)
        self.to(memory_format=torch.channels_last)
        for module in list(self.modules()):
            if hasattr(module, 'logits_dtype'):  # an attention, visited before its bias
                float32_logits = float32_stream and module.float32_logits
                module.logits_dtype = torch.float32 if float32_logits else None
                # the bias is served in the logits' dtype: no cast per call
                module.bias.output_dtype = None if float32_logits else dtype
            if isinstance(module, _CachedBias):
                module.clear_cache()
            for name, child in list(module.named_children()):
                if isinstance(child, (nn.LayerNorm, nn.GroupNorm)):
                    setattr(module, name, Float32Norm(child))
        self.compute_dtype = dtype
        self.residual_dtype = torch.float32 if float32_stream else dtype

    def _wrap_reduced_precision_branches(self, dtype: torch.dtype) -> List[ReducedPrecisionBranch]:
        """Wrap the stem and downsamples (float32 out: they start a stream) and each
        block's ``reduced_precision_branches`` (output left in ``dtype``) in ``dtype``,
        and the modules' ``float32_parts`` in float32; return the ``dtype`` wrappers."""
        wrapped = [ReducedPrecisionBranch(self.stem, dtype, torch.float32)]
        self.stem = wrapped[0]
        for stage in self.stages:
            if stage.downsample is not None:
                stage.downsample = ReducedPrecisionBranch(stage.downsample, dtype, torch.float32)
                wrapped.append(stage.downsample)
            for block in stage.blocks:
                for name in block.reduced_precision_branches:
                    part = getattr(block, name)
                    if part is not None:
                        setattr(block, name, ReducedPrecisionBranch(part, dtype))
                        wrapped.append(getattr(block, name))
        for module in list(self.modules()):
            for name in getattr(module, 'float32_parts', ()):
                setattr(module, name, ReducedPrecisionBranch(getattr(module, name), torch.float32))
        return wrapped

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in any known layout."""
        from mmeffformer.checkpoint.loading import load_pretrained_backbone

        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self._init_default_weights()
            load_pretrained_backbone(
                self, init_cfg['checkpoint'], prefix=init_cfg.get('prefix'), family=self.family
            )
            self._is_init = True
            return
        if init_cfg is None:
            self._init_default_weights()
            self._is_init = True
            return
        super().init_weights()

    def _init_default_weights(self) -> None:
        """Truncated-normal (std 0.02) linear and 1x1 conv weights, zero biases."""
        for module in self.modules():
            is_pointwise = isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
            if isinstance(module, nn.Linear) or is_pointwise:
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
