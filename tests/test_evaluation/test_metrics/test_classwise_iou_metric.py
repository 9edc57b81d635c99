"""ClasswiseIoUMetric: mmseg's IoUMetric plus each class's IoU, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmeffformer.registry import METRICS

CLASSES = ('background', 'disc', 'box', 'triangle')


def sample(pred: np.ndarray, truth: np.ndarray) -> dict:
    data = SegDataSample()
    data.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
    data.gt_sem_seg = PixelData(data=torch.from_numpy(truth)[None])
    return data.to_dict()


def test_per_class_iou_matches_an_independent_count():
    init_default_scope('mmseg')
    metric = METRICS.build(dict(type='mmeffformer.ClasswiseIoUMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    rng = np.random.default_rng(0)
    preds, truths = [], []
    for _ in range(3):
        truth = rng.integers(0, 3, (16, 20))  # 'triangle' never in the truth ...
        truth[:2] = 255  # ... and an ignored band
        pred = np.where(rng.random((16, 20)) < 0.7, truth, rng.integers(0, 4, (16, 20)))
        pred[pred == 255] = 1
        preds.append(pred), truths.append(truth)
        metric.process({}, [sample(pred, truth)])
    results = metric.evaluate(3)
    pred, truth = np.concatenate(preds), np.concatenate(truths)
    valid = truth != 255
    for index, name in enumerate(CLASSES):
        p, t = (pred == index) & valid, (truth == index) & valid
        expected = 100 * (p & t).sum() / (p | t).sum()
        assert results[f'IoU.{name}'] == pytest.approx(expected, abs=0.01), name
    assert results['IoU.triangle'] == 0.0  # predicted, never true
    present = [results[f'IoU.{name}'] for name in CLASSES]
    assert results['mIoU'] == pytest.approx(np.mean(present), abs=0.01)
