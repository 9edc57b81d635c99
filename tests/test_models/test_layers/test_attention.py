"""biased_attention equals PyTorch's scaled_dot_product_attention with a float mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmeffformer.models.layers.attention import biased_attention


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
