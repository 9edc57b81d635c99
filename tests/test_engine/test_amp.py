"""Mixed precision on CPU: bf16 autocast training and inference of every model kind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.runner.amp import autocast

import mmeffformer.engine.optimizers.cpu_autocast_optim_wrapper as amp
from mmeffformer.engine import CPUAutocastOptimWrapper, amp_optim_wrapper
from tests.helpers.downstream import build_from_config, demo_det_batch, demo_seg_batch

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [
    ROOT / 'configs' / 'maskrcnn_effformer_l1_coco.py',
    ROOT / 'configs' / 'swap_in' / 'cascade-mask-rcnn_effformer_v2-s2_coco.py',
    ROOT / 'configs' / 'swap_in' / 'retinanet_effformer_l1_coco.py',
    ROOT / 'configs' / 'swap_in' / 'upernet_effformer_l3_ade20k.py',
    *sorted((ROOT / 'configs').glob('semfpn_effformer_*_ade20k.py')),
]


def record_backbone_dtypes(model: torch.nn.Module) -> list:
    """dtypes of the backbone's stem convolution outputs, appended on every call."""
    seen = []
    model.backbone.stem.conv1.conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_two_bf16_autocast_iterations_and_predict(path):
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None
    detection = cfg.default_scope == 'mmdet'
    if not detection:
        # no padding to the 512x512 crop: on CPUs without native bf16 PyTorch runs bf16
        # convolutions in its slow reference path (~400 s a step at 512x512 on AVX2)
        cfg.model.data_preprocessor.size = (96, 128)
    model = build_from_config(cfg, cfg.default_scope).train()
    wrapper = build_optim_wrapper(model, amp_optim_wrapper(cfg.optim_wrapper, 'cpu', 'bfloat16'))
    assert isinstance(wrapper, CPUAutocastOptimWrapper)
    seen = record_backbone_dtypes(model)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    for step in range(2):
        torch.manual_seed(step)
        if detection:
            packed = demo_det_batch(model, shapes=((3, 96, 128),), training=False)
            packed = dict(inputs=list(packed['inputs']), data_samples=packed['data_samples'])
        else:
            packed = demo_seg_batch(model, 150, shapes=((3, 96, 128),) * 2, training=False)
            packed = dict(inputs=list(packed['inputs']), data_samples=packed['data_samples'])
        losses = model.train_step(packed, wrapper)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in losses.values()), losses
    assert seen == [torch.bfloat16] * 2  # the backbone really ran in bf16
    moved = [
        k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])
    ]
    assert moved  # the optimizer stepped
    model.eval()
    with torch.no_grad(), autocast(device_type='cpu'):  # what TestLoop(fp16=True) does
        if detection:
            out = model(
                **demo_det_batch(model, shapes=((3, 96, 128),), training=False), mode='predict'
            )
        else:
            out = model(
                **demo_seg_batch(model, 150, shapes=((3, 96, 128),), training=False), mode='predict'
            )
    assert len(out) == 1 and seen[-1] == torch.bfloat16


def test_amp_settings_and_errors():
    assert amp_optim_wrapper(dict(type='OptimWrapper'), 'cuda', 'float16') == dict(
        type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic'
    )
    assert amp_optim_wrapper(dict(type='OptimWrapper'), 'cuda', 'bfloat16')['dtype'] == 'bfloat16'
    with pytest.raises(ValueError, match='--amp-dtype float16 is not supported on CPU'):
        amp_optim_wrapper(dict(type='OptimWrapper'), 'cpu', 'float16')
    with pytest.raises(ValueError, match="--amp-dtype must be bfloat16 or float16, got 'int8'"):
        amp_optim_wrapper(dict(type='OptimWrapper'), 'cpu', 'int8')
    with pytest.raises(ValueError, match="--amp supports cpu and cuda, not 'mps'"):
        amp_optim_wrapper(dict(type='OptimWrapper'), 'mps', 'bfloat16')


def test_amp_on_a_cpu_without_native_bf16_warns(monkeypatch):
    logged = []
    monkeypatch.setattr(amp, 'print_log', lambda msg, **kw: logged.append((msg, kw['level'])))
    monkeypatch.setattr(amp, 'cpu_has_native_bf16', lambda: False)
    assert amp.warn_if_bf16_is_emulated()
    ((message, level),) = logged
    assert 'has no native bfloat16' in message and 'slower than float32' in message
    assert level == logging.WARNING
    monkeypatch.setattr(amp, 'cpu_has_native_bf16', lambda: True)
    assert not amp.warn_if_bf16_is_emulated()
