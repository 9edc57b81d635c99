"""Tiny whole-model configs for the export tests, and detections compared across runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.helpers.tiny_configs import ROOT
from tests.helpers.v2_reference import arch_dict

TINY_V2 = arch_dict('tiny')


def tiny_detector_config(
    tmp_path: Path, base: str, family: str = 'v1', extra: str = '', **test_cfg
) -> Path:
    """``configs/<base>`` with a tiny V1 or V2 backbone (bias tables for 128 px)."""
    from tests.helpers.tiny_configs import TINY

    arch = TINY if family == 'v1' else TINY_V2
    backbone_type = (
        'mmeffformer.EfficientFormer' if family == 'v1' else 'mmeffformer.EfficientFormerV2'
    )
    text = f"""
_base_ = ['{ROOT}/configs/{base}']
model = dict(
    backbone=dict(_delete_=True, type='{backbone_type}', arch={arch!r},
                  attn_bias='official', attn_bias_size=128),
    neck=dict(in_channels={list(arch['widths'])}),
    test_cfg={test_cfg!r},
    {extra}
)
"""
    path = tmp_path / f'tiny_{family}_{Path(base).stem}.py'
    path.write_text(text)
    return path


def assert_same_detections(reference, got, box_tol: float, score_tol: float, mask_tol=None):
    """Every reference detection has one of its class in ``got`` with the same box and score.

    Both are ``[boxes, scores, labels(, masks)]`` arrays; detections are matched by class
    and box, since near-equal scores may come out in another order.
    """
    reference = [np.asarray(r) for r in reference]
    got = [np.asarray(g) for g in got]
    assert len(got[0]) == len(reference[0]), (len(got[0]), len(reference[0]))
    assert len(reference[0]) > 0, 'nothing to compare: the test needs detections'
    for index in range(len(reference[0])):
        same_class = np.nonzero(got[2] == reference[2][index])[0]
        assert len(same_class), f'no detection of class {reference[2][index]}'
        gaps = np.abs(got[0][same_class] - reference[0][index]).max(axis=1)
        match = same_class[int(np.argmin(gaps))]
        assert gaps.min() <= box_tol, (index, gaps.min())
        assert abs(got[1][match] - reference[1][index]) <= score_tol
        if mask_tol is not None:
            assert np.abs(got[3][match] - reference[3][index]).max() <= mask_tol


def mmdet_predict(detector, image):
    """mmdet's own inference on the padded image: the independent reference."""
    from mmdet.structures import DetDataSample

    from mmeffformer.models.graphs.detector_graph import pad_to_divisor

    height, width = image.shape[-2:]
    padded = pad_to_divisor(image, 32)
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        scale_factor=(1.0, 1.0),
        batch_input_shape=tuple(padded.shape[-2:]),
        pad_shape=tuple(padded.shape[-2:]),
    )
    with torch.no_grad():
        result = detector.predict(padded, [DetDataSample(metainfo=meta)], rescale=True)[0]
    return result.pred_instances
