"""The matmul RoIAlign against mmcv's compiled kernel: values, gradients, chunking, bf16."""

from __future__ import annotations

import pytest
import torch
from mmcv.ops import RoIAlign

import mmeffformer.models.layers.roi_align as matmul_roi_align
from mmeffformer.models.layers.roi_align import MatmulRoIAlign
from tests.helpers.rois import random_rois


@pytest.mark.parametrize(
    'output_size, spatial_scale, sampling_ratio, aligned',
    [(7, 1 / 4, 0, True), (14, 1 / 8, 0, True), ((5, 3), 1 / 4, 2, True), (7, 1 / 16, 0, False)],
)
def test_values_and_gradients_match_mmcv(output_size, spatial_scale, sampling_ratio, aligned):
    features = torch.randn(3, 6, 23, 31, dtype=torch.float32, requires_grad=True)
    rois = random_rois(40, 3, 31 / spatial_scale, 23 / spatial_scale, seed=1)
    args = (output_size, spatial_scale, sampling_ratio)
    expected = RoIAlign(*args, aligned=aligned)(features, rois)
    result = MatmulRoIAlign(*args, aligned=aligned)(features, rois)
    assert result.shape == expected.shape == (40, 6, *torch.nn.modules.utils._pair(output_size))
    torch.testing.assert_close(result, expected, atol=2e-6, rtol=1e-5)
    if sampling_ratio == 0 and aligned:  # adaptive grid: an empty RoI samples nothing
        assert result[1].abs().max() == 0
    upstream = torch.randn_like(expected)
    (expected_grad,) = torch.autograd.grad(expected, features, upstream)
    (grad,) = torch.autograd.grad(result, features, upstream)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_chunked_matmuls_give_the_same_result(monkeypatch):
    features = torch.randn(2, 5, 17, 19)
    rois = random_rois(30, 2, 19 * 4, 17 * 4, seed=2)
    whole = MatmulRoIAlign(7, 1 / 4)(features, rois)
    monkeypatch.setattr(matmul_roi_align, 'CHUNK_ELEMENTS', 7 * 5 * 19 * 3)  # 3 RoIs a chunk
    torch.testing.assert_close(MatmulRoIAlign(7, 1 / 4)(features, rois), whole)


def test_bf16_autocast_runs_in_bf16_close_to_float32():
    features = torch.randn(2, 8, 20, 20)
    rois = random_rois(12, 2, 80, 80, seed=3)
    expected = RoIAlign(7, 1 / 4, 0)(features, rois)
    with torch.autocast('cpu', torch.bfloat16):
        result = MatmulRoIAlign(7, 1 / 4)(features, rois)
    assert result.dtype == torch.bfloat16
    torch.testing.assert_close(result.float(), expected, atol=0.05, rtol=0.02)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pool_mode='avg' only, got 'max'"):
        MatmulRoIAlign(7, pool_mode='max')
    with pytest.raises(ValueError, match='sampling_ratio must be >= 0'):
        MatmulRoIAlign(7, sampling_ratio=-1)
    with pytest.raises(ValueError, match=r'rois \(K, 5\), got .* and \(3, 4\)'):
        MatmulRoIAlign(7)(torch.zeros(1, 2, 8, 8), torch.zeros(3, 4))
