"""mmcv's float32-only CPU ops take bf16 and channels-last inputs once mmeffformer is imported."""

from __future__ import annotations

import pytest
import torch

import mmeffformer  # noqa: F401 - applies the fixes

pytestmark = pytest.mark.compat


def test_mmcv_ops_compute_in_float32_for_bf16_inputs():
    from mmcv.ops import nms, roi_align

    features = torch.rand(1, 4, 16, 16)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0]])
    want = roi_align(features, rois, (3, 3), 1.0, 2, 'avg', True)
    bf16 = features.bfloat16().requires_grad_()
    got = roi_align(bf16, rois.bfloat16(), (3, 3), 1.0, 2, 'avg', True)
    assert got.dtype == torch.bfloat16  # computed in float32, returned in the input's dtype
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
    got.sum().backward()  # the float32-only backward kernel too
    assert bf16.grad.dtype == torch.bfloat16 and bf16.grad.sum() > 0
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
    assert keep.tolist() == [0, 2]


def test_mmcv_roi_align_reads_channels_last_features_right():
    from mmcv.ops import roi_align

    features = torch.randn(2, 6, 12, 15)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [1, 4.0, 2.0, 14.0, 7.0]])
    want = roi_align(features, rois, (3, 3), 1.0, 2, 'avg', True)
    channels_last = features.contiguous(memory_format=torch.channels_last).requires_grad_()
    got = roi_align(channels_last, rois, (3, 3), 1.0, 2, 'avg', True)
    torch.testing.assert_close(got, want)
    upstream = torch.randn_like(want)
    (grad,) = torch.autograd.grad(got, channels_last, upstream)
    (want_grad,) = torch.autograd.grad(
        roi_align(features.requires_grad_(), rois, (3, 3), 1.0, 2, 'avg', True), features, upstream
    )
    torch.testing.assert_close(grad, want_grad)
