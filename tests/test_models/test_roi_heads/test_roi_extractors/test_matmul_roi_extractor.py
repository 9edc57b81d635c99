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


def test_bf16_channels_last_features_are_pooled_without_a_float32_copy():
    from torch.utils._python_dispatch import TorchDispatchMode

    feats = tuple(torch.randn(1, 4, 320 // s, 480 // s) for s in (4, 8, 16, 32))
    rois = random_rois(50, 1, 480, 320, seed=5)
    rois[:, 3:] = torch.maximum(rois[:, 3:], rois[:, 1:3] + 0.5)
    expected = SingleRoIExtractor(**extractor_args(7))(feats, rois)
    low = tuple(f.bfloat16().contiguous(memory_format=torch.channels_last) for f in feats)
    big_float32 = []

    class FeatureSizedFloat32(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.dtype == torch.float32:
                if out.dim() == 4 and 4 in out.shape:  # a feature map or RoI features
                    big_float32.append(func)
            return out

    with FeatureSizedFloat32():
        pooled = MatmulRoIExtractor(**extractor_args(7))(low, rois)
    assert big_float32 == []
    assert pooled.dtype == torch.bfloat16
    assert pooled.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pooled.float(), expected, atol=0.05, rtol=0.02)


@pytest.mark.usefixtures('fresh_dynamo')
def test_compiled_code_runs_the_extractor_eagerly_with_no_recompiles_per_roi_set():
    from torch._dynamo.utils import counters

    extractor = MatmulRoIExtractor(**extractor_args(7))

    def pooled_sum(feats, rois):  # a head around the extractor
        return (extractor([f * 2 for f in feats], rois) + 1).sum((2, 3))

    @torch.compile(backend='eager')
    def train_step(feats, rois):  # as a compiled training step: the backward pass inside
        pooled = pooled_sum(feats, rois)
        pooled.square().sum().backward()
        return pooled

    graphs = []
    for count in (30, 17, 45, 9, 26):
        feats = [torch.randn(2, 4, 320 // s, 288 // s, requires_grad=True) for s in (4, 8, 16, 32)]
        rois = random_rois(count, 2, 288, 320, seed=count)
        expected = pooled_sum(feats, rois)
        expected.square().sum().backward()
        want = [f.grad for f in feats]
        for f in feats:
            f.grad = None
        torch.testing.assert_close(train_step(feats, rois), expected)
        for f, grad in zip(feats, want):
            torch.testing.assert_close(f.grad, grad)
        graphs.append(counters['stats']['unique_graphs'])
    # the head's graphs, made dynamic in the RoI count on the second call; none for the
    # level split or the RoIAlign's windows, forward or backward
    assert graphs[1] == graphs[-1], graphs
