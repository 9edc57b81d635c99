"""FLOPs counted on the aten operators."""

from __future__ import annotations

import torch

from mmeffformer.utils.model_analysis import count_flops


def test_flops_of_a_convolution_and_a_linear_layer():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    linear = torch.nn.Linear(8, 5)
    x = torch.rand(2, 3, 10, 12)
    # a multiply-add is 2 FLOPs: 2 * N * Cout * Cin * k * k * H * W, then 2 * N * H * W * 8 * 5
    expected = 2 * 2 * 8 * 3 * 9 * 10 * 12 + 2 * 2 * 10 * 12 * 8 * 5
    got = count_flops(lambda: linear(conv(x).permute(0, 2, 3, 1)))
    assert got == expected
