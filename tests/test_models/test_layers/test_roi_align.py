"""The matmul RoIAlign against mmcv's compiled kernel: values, gradients, levels."""

from __future__ import annotations

import pytest
import torch
from mmcv.ops import RoIAlign
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

import mmeffformer.models.layers.roi_align as matmul_roi_align
from mmeffformer.detection import MatmulRoIExtractor
from mmeffformer.models.layers.roi_align import MatmulRoIAlign


def random_rois(count: int, images: int, width: float, height: float, seed: int) -> torch.Tensor:
    """RoIs in shuffled image order, some reaching past the map, plus edge cases."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 1.2
    corner -= torch.tensor([width, height]) * 0.1
    size = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.7
    index = torch.randint(0, images, (count, 1), generator=generator).float()
    rois = torch.cat([index, corner, corner + size], 1)
    rois[0, 1:] = torch.tensor([0.0, 0.0, width, height])  # the whole map
    rois[1, 3:] = rois[1, 1:3]  # empty
    rois[2, 1:] = torch.tensor([-30.0, -30.0, width + 30, height + 30])  # beyond every edge
    rois[3, 1:] = torch.tensor([width - 1.0, height - 1.0, width, height])  # last cells
    return rois


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


def extractor_args(output_size: int) -> dict:
    return dict(
        roi_layer=dict(type='RoIAlign', output_size=output_size, sampling_ratio=0),
        out_channels=4,
        featmap_strides=[4, 8, 16, 32],
    )


def test_extractor_matches_mmdets_across_levels():
    feats = tuple(torch.randn(2, 4, 800 // s, 672 // s) for s in (4, 8, 16, 32))
    rois = random_rois(60, 2, 672, 800, seed=4)
    rois[:, 3:] = torch.maximum(rois[:, 3:], rois[:, 1:3] + 0.5)  # mmcv: non-empty
    ours, mmdets = MatmulRoIExtractor(**extractor_args(7)), SingleRoIExtractor(**extractor_args(7))
    levels = mmdets.map_roi_levels(rois, 4)
    assert len(torch.unique(levels)) == 4  # every level takes some RoIs
    torch.testing.assert_close(ours(feats, rois), mmdets(feats, rois), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(
        ours(feats, rois, roi_scale_factor=1.5), mmdets(feats, rois, roi_scale_factor=1.5)
    )


def test_extractor_refuses_other_roi_layers():
    args = extractor_args(7)
    args['roi_layer'] = dict(type='RoIPool', output_size=7)
    with pytest.raises(ValueError, match="type 'RoIAlign' only, got 'RoIPool'"):
        MatmulRoIExtractor(**args)
