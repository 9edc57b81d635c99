"""Deploy post-processing of mmseg segmentors gives mmseg's own results."""

from __future__ import annotations

import copy

import pytest
import torch
from mmseg.structures import SegDataSample

from mmeffformer.models import switch_to_deploy
from mmeffformer.models.segmentors import use_fast_postprocess
from mmeffformer.models.segmentors.fast_postprocess import class_argmax
from tests.helpers.downstream import tiny_semantic_fpn
from tests.helpers.tiny_models import randomise_batchnorm


@pytest.fixture(scope='module')
def segmentor():
    model = tiny_semantic_fpn(num_classes=7)
    randomise_batchnorm(model)
    return model


def samples(metainfos):
    return [SegDataSample(metainfo=dict(img_shape=(64, 96), **meta)) for meta in metainfos]


METAINFOS = [
    dict(ori_shape=(64, 96)),  # the resize mmseg does here is the identity
    dict(ori_shape=(40, 50), padding_size=[0, 6, 0, 4]),  # unpadded 60x90, resized
    dict(ori_shape=(64, 96), flip=True, flip_direction='horizontal'),
    dict(ori_shape=(80, 70), flip=True, flip_direction='vertical'),
    dict(ori_shape=(62, 96), img_padding_size=[0, 0, 1, 1]),
]


@pytest.mark.parametrize('align_corners', [False, True])
def test_fast_postprocess_gives_mmsegs_logits_and_predictions(segmentor, align_corners):
    segmentor = copy.deepcopy(segmentor)
    segmentor.align_corners = align_corners
    logits = torch.randn(len(METAINFOS), 7, 64, 96)
    logits[:, 3] = logits[:, 5]  # ties between classes: the first one wins
    logits = logits.contiguous(memory_format=torch.channels_last)
    expected = segmentor.postprocess_result(logits.clone(), samples(METAINFOS))
    use_fast_postprocess(segmentor)
    got = segmentor.postprocess_result(logits.clone(), samples(METAINFOS))
    for want, have, meta in zip(expected, got, METAINFOS):
        assert have.seg_logits.data.shape == (7, *meta['ori_shape'])
        torch.testing.assert_close(have.seg_logits.data, want.seg_logits.data, rtol=0, atol=0)
        assert torch.equal(have.pred_sem_seg.data, want.pred_sem_seg.data)
    without_samples = segmentor.postprocess_result(logits.clone())
    assert torch.equal(without_samples[0].pred_sem_seg.data, logits[0].argmax(0, keepdim=True))


def test_fast_postprocess_rejects_an_unknown_flip_direction(segmentor):
    segmentor = copy.deepcopy(segmentor)
    use_fast_postprocess(segmentor)
    meta = dict(ori_shape=(64, 96), flip=True, flip_direction='diagonal')
    with pytest.raises(ValueError, match="flip_direction must be one of .*'diagonal'"):
        segmentor.postprocess_result(torch.randn(1, 7, 64, 96), samples([meta]))


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_class_argmax_is_argmax_with_ties_and_nan(dtype, layout):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (1, 9, 17, 23), generator=gen).to(dtype)  # many ties
    logits[0, 4, 2, 3] = float('nan')
    logits[0, 6, 2, 3] = float('nan')
    logits = logits.contiguous(memory_format=layout)[0]
    assert torch.equal(class_argmax(logits), logits.argmax(0, keepdim=True))


def test_switch_to_deploy_gives_segmentors_the_fast_postprocess(segmentor):
    segmentor = copy.deepcopy(segmentor)
    image = torch.rand(1, 3, 64, 96)
    meta = [dict(ori_shape=(64, 96))]
    with torch.no_grad():
        expected = segmentor.predict(image, samples(meta))[0]
    switch_to_deploy(segmentor, sizes=[(64, 96)])
    assert segmentor.postprocess_result.__func__.__module__.endswith('fast_postprocess')
    with torch.no_grad():
        got = segmentor.predict(image, samples(meta))[0]
    torch.testing.assert_close(got.seg_logits.data, expected.seg_logits.data, rtol=1e-4, atol=1e-4)
    assert (got.pred_sem_seg.data == expected.pred_sem_seg.data).float().mean() > 0.99
