"""What the installed torch can do: one spelling of the moved calls, clear refusals, and the
fallbacks that give the same results on torch 2.1."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config

from mmeffformer.engine.optimizers import fused as fused_module
from mmeffformer.engine.optimizers import unfuse_where_unsupported
from mmeffformer.models import EfficientFormer, switch_to_deploy
from mmeffformer.utils import torch_features
from mmeffformer.utils.torch_features import (
    UnsupportedTorchFeatureError,
    autocast_dtype,
    autocast_enabled,
    is_compiling,
    require_torch,
    torchscript_exporter,
)

pytestmark = pytest.mark.compat
TINY = dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 2), num_attention=1)


def test_autocast_queries_follow_the_autocast_state():
    assert not autocast_enabled('cpu') and not is_compiling()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_enabled('cpu') and autocast_dtype('cpu') == torch.bfloat16
    assert not autocast_enabled('cpu')


def test_an_old_torch_is_refused_naming_feature_found_and_needed(monkeypatch):
    monkeypatch.setattr(torch_features, 'TORCH_VERSION', (2, 1, 2))
    monkeypatch.setattr(torch, '__version__', '2.1.2+cu121')
    with pytest.raises(UnsupportedTorchFeatureError, match=r'^frobnicate needs torch >= 2\.5, but '
                       r'torch 2\.1\.2\+cu121 is installed'):  # fmt: skip
        require_torch('frobnicate', '2.5')
    require_torch('frobnicate', '2.1')
    # compiled deploy refuses before it rewrites anything
    backbone = EfficientFormer(TINY).eval()
    with pytest.raises(
        UnsupportedTorchFeatureError, match=r'compiled deploy .* needs torch >= 2\.7'
    ):
        switch_to_deploy(backbone, compile=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())  # not folded


def test_onnx_export_asks_for_the_torchscript_exporter_only_where_torch_has_a_choice(monkeypatch):
    def old_export(model, args, f, input_names=None, output_names=None, opset_version=None):
        pass

    choice = torchscript_exporter()
    assert choice == ({'dynamo': False} if torch_features.torch_at_least('2.5') else {})
    monkeypatch.setattr(torch.onnx, 'export', old_export)
    assert torchscript_exporter() == {}


@pytest.mark.parametrize('new_torch', [True, False])
def test_fused_optimizers_run_unfused_only_where_torch_has_no_fused_cpu_kernel(
    monkeypatch, new_torch
):
    monkeypatch.setattr(fused_module, 'torch_at_least', lambda version: new_torch)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3, fused=True))))
    unfuse_where_unsupported(cfg)
    assert cfg.optim_wrapper.optimizer.fused is new_torch
    # and the unfused update is the fused one: the same weights after a step
    if torch_features.torch_at_least('2.4'):
        start = torch.randn(5, 3)
        weights = [torch.nn.Parameter(start.clone()) for _ in range(2)]
        for weight, fused in zip(weights, (True, False)):
            weight.grad = torch.ones_like(weight)
            torch.optim.AdamW([weight], lr=1e-3, fused=fused).step()
        torch.testing.assert_close(weights[0], weights[1])


def test_float16_deploy_on_a_cpu_without_float16_convolutions_is_refused(monkeypatch):
    from mmeffformer.models.backbones import base

    monkeypatch.setattr(base, 'has_cpu_float16_convolution', lambda: False)
    backbone = EfficientFormer(TINY).eval()
    with pytest.raises(UnsupportedTorchFeatureError, match=r'float16 deploy on the CPU needs '
                       r'float16 CPU convolutions, which torch \S+ lacks'):  # fmt: skip
        switch_to_deploy(backbone, dtype=torch.float16)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())  # not folded
    switch_to_deploy(backbone, dtype=torch.bfloat16)  # bf16 is there on every stack
