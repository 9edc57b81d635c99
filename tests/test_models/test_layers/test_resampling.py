"""The fast resampling ops equal PyTorch's reference kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmeffformer.models.layers import mean_pool3x3, resize_bilinear
from mmeffformer.models.layers.resampling import resize_bicubic_by_gathers


@pytest.mark.parametrize('size', [(1, 1), (1, 7), (2, 2), (5, 3), (32, 17)])
def test_mean_pool_equals_avg_pool_without_padding_counts(size):
    x = torch.randn(2, 5, *size)
    want = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(mean_pool3x3(x), want, rtol=1e-6, atol=1e-6)


def test_mean_pool_corner_is_mean_of_its_four_real_neighbours():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    # top-left corner: (0 + 1 + 4 + 5) / 4
    assert mean_pool3x3(x)[0, 0, 0, 0].item() == pytest.approx(2.5)


def test_mean_pool_gradient_equals_avg_pool_gradient():
    x = torch.randn(1, 3, 6, 5, requires_grad=True)
    weights = torch.randn(1, 3, 6, 5)
    (mean_pool3x3(x) * weights).sum().backward()
    got = x.grad.clone()
    x.grad = None
    (F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) * weights).sum().backward()
    torch.testing.assert_close(got, x.grad, rtol=1e-6, atol=1e-6)


def test_mean_pool_rejects_non_4d_input():
    with pytest.raises(ValueError, match=r'NCHW tensor, got shape \(3, 4\)'):
        mean_pool3x3(torch.zeros(3, 4))


@pytest.mark.parametrize(
    'size, out', [((16, 16), (32, 32)), ((13, 7), (25, 13)), ((4, 5), (7, 9)), ((1, 3), (2, 5))]
)
def test_resize_equals_interpolate(size, out):
    x = torch.randn(2, 6, *size)
    want = F.interpolate(x, size=out, mode='bilinear', align_corners=False)
    torch.testing.assert_close(resize_bilinear(x, out), want, rtol=1e-6, atol=1e-6)


def test_resize_to_same_size_is_identity():
    x = torch.randn(1, 2, 5, 4)
    assert resize_bilinear(x, (5, 4)) is x


@pytest.mark.parametrize(
    'shape, size', [((625, 625), (950, 950)), ((49, 196), (30, 400)), ((9, 9), (3, 20))]
)
def test_bicubic_resize_by_gathers_is_interpolate(shape, size):
    # float64: the sampling positions and weights are PyTorch's, not just close to them
    x = torch.randn(2, *shape, dtype=torch.float64)
    want = F.interpolate(x[None], size=size, mode='bicubic', align_corners=False)[0]
    got = resize_bicubic_by_gathers(x, size)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-10
