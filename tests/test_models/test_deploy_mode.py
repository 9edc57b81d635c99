"""Deploy mode equals eval mode, with no BatchNorm left and no bias work at seen sizes."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.models import EfficientFormer, EfficientFormerV2
from mmeffformer.models.layers import LayerScale
from mmeffformer.models.layers.attention_bias import _CachedBias
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict


@pytest.mark.parametrize(
    'model, num_biases',
    [
        # TINY_V1: 2 attention blocks in stage 4
        (lambda: EfficientFormer(TINY_V1, drop_path_rate=0.1), 2),
        (lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128), 2),
        # V2 tiny: one attention block in stages 3 and 4, plus the stage-4 downsampling attention
        (lambda: EfficientFormerV2(arch_dict('tiny'), drop_path_rate=0.1), 3),
    ],
)
def test_deploy_equals_eval_and_serves_cached_biases(model, num_biases):
    model = model()
    randomise_batchnorm(model)
    model.eval()
    x = torch.rand(2, 3, 97, 143)
    with torch.no_grad():
        expected = model(x)
    model.switch_to_deploy(sizes=[(97, 143)])
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    biases = [m for m in model.modules() if isinstance(m, _CachedBias)]
    assert len(biases) == num_biases  # "no bias computed" below must not hold vacuously
    computed = []
    for bias in biases:
        original = bias.compute
        bias.compute = lambda *a, _o=original: computed.append(1) or _o(*a)
    got = model(x)  # gradients enabled: still served from the cache
    assert computed == []
    assert not any(isinstance(m, LayerScale) for m in model.modules())
    with torch.no_grad():
        fused = model(x)  # also without autograd
    for outputs in (got, fused):
        for a, b in zip(outputs, expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
