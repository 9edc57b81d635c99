"""Models built from configs for measuring: FLOPs, parameters, one inference call, random
weights with trained-like statistics."""

from __future__ import annotations

import copy
from typing import Callable, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.flop_counter import FlopCounterMode


def build_model(config: str, part: str) -> Tuple[nn.Module, str]:
    """``(model, scope)``: the whole detector / segmentor, or its backbone only."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    return build_model_from_cfg(cfg, part), cfg.get('default_scope', 'mmdet')


def build_model_from_cfg(cfg, part: str = 'model') -> nn.Module:
    """The config's model (or backbone) with random weights, in eval mode."""
    from mmengine.registry import init_default_scope

    cfg = copy.deepcopy(cfg)
    scope = cfg.get('default_scope', 'mmdet')
    cfg.model.backbone.init_cfg = None  # random weights: speed and FLOPs do not care
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    model = MODELS.build(cfg.model if part == 'model' else cfg.model.backbone)
    return model.eval()


def model_call(
    model: nn.Module,
    scope: str,
    part: str,
    batch: int,
    height: int,
    width: int,
    device: str,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[], object]:
    """A no-argument callable running one inference at the given size."""
    images = torch.rand(batch, 3, height, width, device=device).to(memory_format=memory_format)
    if part == 'backbone':
        return lambda: model(images)
    shape = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width))
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample

        samples = [SegDataSample(metainfo=shape) for _ in range(batch)]
    else:
        from mmdet.structures import DetDataSample

        meta = dict(shape, scale_factor=(1.0, 1.0), batch_input_shape=(height, width))
        samples = [DetDataSample(metainfo=meta) for _ in range(batch)]
    return lambda: model(images, samples, mode='predict')


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one call, counted on the aten operators (a multiply-add is 2 FLOPs)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        call()
    return counter.get_total_flops()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trained_like(model: torch.nn.Module, seed: int = 0) -> None:
    """BatchNorm statistics and affine terms away from the identity, layer scales in
    0.1-0.6 (trained ones are far from their 1e-5 initial value): random weights whose
    activations grow and mix like a trained model's, so reduced-precision error is not
    hidden by near-identity blocks."""
    from mmeffformer.models.layers import LayerScale

    generator = torch.Generator().manual_seed(seed)
    for norm in (m for m in model.modules() if isinstance(m, _BatchNorm)):
        n = norm.num_features
        norm.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
        norm.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
        norm.weight.data.copy_(1 + torch.randn(n, generator=generator) * 0.2)
        norm.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    for scale in (m for m in model.modules() if isinstance(m, LayerScale)):
        scale.gamma.data.copy_(torch.rand(scale.gamma.shape, generator=generator) * 0.5 + 0.1)
