"""The matmul RoIAlign against mmcv's compiled kernel: values, gradients, windows, bf16."""

from __future__ import annotations

import pytest
import torch
from mmcv.ops import RoIAlign

from mmeffformer.models.layers.roi_align import MatmulRoIAlign, axis_windows
from tests.helpers.rois import random_rois


@pytest.mark.parametrize(
    'output_size, spatial_scale, sampling_ratio, aligned, channels_last',
    [
        (7, 1 / 4, 0, True, False),
        (14, 1 / 8, 0, True, True),
        ((5, 3), 1 / 4, 2, True, False),
        (7, 1 / 16, 0, False, True),
    ],
)
def test_values_and_gradients_match_mmcv(
    output_size, spatial_scale, sampling_ratio, aligned, channels_last
):
    features = torch.randn(3, 6, 23, 31, dtype=torch.float32, requires_grad=True)
    # mmcv's kernel reads NCHW memory whatever the strides (channels-last gives wrong values)
    ours = (
        features.detach().contiguous(memory_format=torch.channels_last)
        if channels_last
        else features.detach()
    )
    ours.requires_grad_(True)
    rois = random_rois(40, 3, 31 / spatial_scale, 23 / spatial_scale, seed=1)
    args = (output_size, spatial_scale, sampling_ratio)
    expected = RoIAlign(*args, aligned=aligned)(features, rois)
    result = MatmulRoIAlign(*args, aligned=aligned)(ours, rois)
    assert result.shape == expected.shape == (40, 6, *torch.nn.modules.utils._pair(output_size))
    torch.testing.assert_close(result, expected, atol=2e-6, rtol=1e-5)
    if sampling_ratio == 0 and aligned:  # adaptive grid: an empty RoI samples nothing
        assert result[1].abs().max() == 0
    upstream = torch.randn_like(expected)
    (expected_grad,) = torch.autograd.grad(expected, features, upstream)
    (grad,) = torch.autograd.grad(result, ours, upstream)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_small_rois_on_a_large_map_read_their_windows_only():
    # COCO's case: RoIs a few cells wide on a map many times larger; every value outside
    # the RoIs' windows is NaN, so reading one cell more than the samples need shows
    features = torch.full((2, 4, 90, 120), float('nan'))
    rois = torch.tensor(
        [[0, 40.0, 60.0, 75.0, 90.0], [1, 300.0, 10.0, 330.0, 50.0], [0, 0.0, 0.0, 9.0, 9.0]]
    )
    for index, x1, y1, x2, y2 in rois.tolist():
        # aligned samples reach from x1 / 4 - 0.5 to x2 / 4 - 0.5; their cells and the next
        rows = slice(max(int(y1 / 4 - 0.5), 0), int(y2 / 4 - 0.5) + 2)
        cols = slice(max(int(x1 / 4 - 0.5), 0), int(x2 / 4 - 0.5) + 2)
        features[int(index), :, rows, cols] = torch.randn(
            4, rows.stop - rows.start, cols.stop - cols.start
        )
    expected = RoIAlign(7, 1 / 4, 0)(torch.nan_to_num(features), rois)
    result = MatmulRoIAlign(7, 1 / 4)(features, rois)
    torch.testing.assert_close(result, expected, atol=2e-6, rtol=1e-5)


def test_axis_windows_are_the_touched_cells():
    weights = torch.zeros(3, 2, 10)
    weights[0, 0, 2], weights[0, 1, 5] = 0.5, 0.25  # cells 2..5
    weights[1, 1, 9] = 1.0  # the last cell only
    first, count = axis_windows(weights)  # RoI 2 touches nothing
    assert first.tolist()[:2] == [2, 9] and count.tolist() == [4, 1, 0]


def test_bf16_autocast_runs_in_bf16_close_to_float32():
    features = torch.randn(2, 8, 20, 20)
    rois = random_rois(12, 2, 80, 80, seed=3)
    expected = RoIAlign(7, 1 / 4, 0)(features, rois)
    with torch.autocast('cpu', torch.bfloat16):
        result = MatmulRoIAlign(7, 1 / 4)(features, rois)
    assert result.dtype == torch.bfloat16
    torch.testing.assert_close(result.float(), expected, atol=0.05, rtol=0.02)


def test_bf16_features_give_bf16_and_float32_gradients_under_autocast():
    features = torch.randn(2, 8, 20, 20)
    rois = random_rois(12, 2, 80, 80, seed=3)
    # deploy mode's case: the features themselves are bf16, no autocast
    result = MatmulRoIAlign(7, 1 / 4)(features.bfloat16(), rois)
    assert result.dtype == torch.bfloat16
    expected = RoIAlign(7, 1 / 4, 0)(features, rois)
    torch.testing.assert_close(result.float(), expected, atol=0.05, rtol=0.02)
    # training under autocast: float32 leaf, bf16 compute, float32 gradient
    leaf = features.clone().requires_grad_(True)
    upstream = torch.randn_like(expected)
    with torch.autocast('cpu', torch.bfloat16):
        pooled = MatmulRoIAlign(7, 1 / 4)(leaf, rois)
    (grad,) = torch.autograd.grad(pooled, leaf, upstream.bfloat16())
    (expected_grad,) = torch.autograd.grad(
        RoIAlign(7, 1 / 4, 0)(features.requires_grad_(True), rois), features, upstream
    )
    assert grad.dtype == torch.float32
    torch.testing.assert_close(grad, expected_grad, atol=0.05, rtol=0.02)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pool_mode='avg' only, got 'max'"):
        MatmulRoIAlign(7, pool_mode='max')
    with pytest.raises(ValueError, match='sampling_ratio must be >= 0'):
        MatmulRoIAlign(7, sampling_ratio=-1)
    with pytest.raises(ValueError, match=r'rois \(K, 5\), got .* and \(3, 4\)'):
        MatmulRoIAlign(7)(torch.zeros(1, 2, 8, 8), torch.zeros(3, 4))
