"""biased_attention equals PyTorch's scaled_dot_product_attention with a float mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmeffformer.models import EfficientFormer, EfficientFormerV2, switch_to_deploy
from mmeffformer.models.layers.attention import biased_attention
from tests.helpers.tiny_models import TINY_V1
from tests.helpers.v2_reference import arch_dict


def test_matches_sdpa_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 4, generator=gen, requires_grad=True)
    k = torch.randn(2, 3, 7, 4, generator=gen, requires_grad=True)
    v = torch.randn(2, 3, 7, 6, generator=gen, requires_grad=True)
    bias = torch.randn(3, 5, 7, generator=gen, requires_grad=True)  # shared over the batch
    weights = torch.randn(2, 3, 5, 6, generator=gen)
    got = biased_attention(q, k, v, bias, scale=0.3)
    grads = torch.autograd.grad((got * weights).sum(), (q, k, v, bias))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.3)
    want_grads = torch.autograd.grad((want * weights).sum(), (q, k, v, bias))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_does_not_change_the_cached_bias():
    bias = torch.randn(2, 3, 3)
    before = bias.clone()
    q = k = v = torch.randn(1, 2, 3, 4)
    biased_attention(q, k, v, bias, scale=1.0)
    torch.testing.assert_close(bias, before, rtol=0, atol=0)


def test_logits_are_computed_in_the_bias_dtype():
    """bf16 q, k, v with a float32 bias: logits and softmax in float32, as an independent
    float32 computation gives them; a bf16 bias rounds logits of ~40 by up to 0.125."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 50, 16) * 3 for _ in range(3))
    bias = torch.randn(2, 50, 50)
    q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    logits = q.float() @ k.float().transpose(-2, -1) * 0.25 + bias
    assert logits.abs().max() > 20
    want = logits.softmax(dim=-1).bfloat16().float() @ v.float()
    got = biased_attention(q, k, v, bias, 0.25)
    rounded = biased_attention(q, k, v, bias.bfloat16(), 0.25)
    assert got.dtype == rounded.dtype == torch.bfloat16
    error = (got.float() - want).abs().max().item()
    assert error <= 2**-8 * want.abs().max().item()  # the output's own bf16 rounding
    assert (rounded.float() - want).abs().max().item() > 4 * error


@pytest.mark.parametrize(
    'build, float32_logits',
    [
        (lambda: EfficientFormer(TINY_V1), True),
        (lambda: EfficientFormerV2(arch_dict('tiny')), False),
    ],
    ids=['v1', 'v2'],
)
def test_reduced_precision_deploy_sets_the_logits_dtype_per_attention_class(build, float32_logits):
    model = switch_to_deploy(build(), sizes=[(64, 64)], dtype=torch.bfloat16)
    attentions = [m for m in model.modules() if hasattr(m, 'logits_dtype')]
    assert attentions
    logits_dtype = torch.float32 if float32_logits else torch.bfloat16
    for attention in attentions:
        assert attention.logits_dtype == (torch.float32 if float32_logits else None)
        # the cached bias is served in the logits' dtype: no cast per call
        assert attention.bias((2, 2), (2, 2)).dtype == logits_dtype
    legacy = switch_to_deploy(build(), dtype=torch.bfloat16, float32_residual=False)
    assert all(m.logits_dtype is None for m in legacy.modules() if hasattr(m, 'logits_dtype'))
