"""MatmulRoIExtractor equals mmdet's SingleRoIExtractor over FPN levels."""

from __future__ import annotations

import pytest
import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

from mmeffformer.models.roi_heads import MatmulRoIExtractor
from tests.helpers.rois import random_rois


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
