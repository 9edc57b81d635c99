"""The backbones compile as one graph in training mode too, with eager's gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from mmeffformer.models import EfficientFormer, EfficientFormerV2
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict

pytestmark = pytest.mark.usefixtures('fresh_dynamo')


@pytest.mark.parametrize(
    'build',
    [
        lambda: EfficientFormer(TINY_V1),
        lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128),
        lambda: EfficientFormerV2(arch_dict('tiny'), norm_eval=True),
        lambda: EfficientFormerV2(arch_dict('tiny'), attn_bias='official', attn_bias_size=128),
    ],
    ids=['v1-relative', 'v1-official', 'v2-relative-norm-eval', 'v2-official'],
)
def test_training_step_compiles_fullgraph_with_eager_gradients(build):
    torch.manual_seed(0)
    eager = build()
    randomise_batchnorm(eager)
    eager.train()
    compiled = copy.deepcopy(eager)
    # dynamo capture is what fullgraph guards (a graph break raises); the eager backend
    # keeps the test fast, the code generator is torch's own
    compiled.compile(fullgraph=True, backend='eager')
    x = torch.rand(2, 3, 96, 128)
    losses = []
    for model in (eager, compiled):
        loss = sum(feature.square().mean() for feature in model(x))
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0])
    for (name, a), (_, b) in zip(eager.named_parameters(), compiled.named_parameters()):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in compiled.parameters())
