"""A faster ``postprocess_result`` for mmseg segmentors in deploy mode, same outputs.

mmseg's ``BaseSegmentor.postprocess_result`` resizes each image's logits to its
``ori_shape`` even when they already have that shape, and takes the class argmax with
``Tensor.argmax``: in a bf16 Semantic FPN l1 at 512x512 (150 classes) the two took about
40% of ``predict``. A bilinear resize to the same size is the identity (every
sample lands on a pixel centre, with both ``align_corners`` settings), so it is skipped;
``Tensor.max(dim).indices`` gives the same indices as ``argmax`` (the first maximum, also
for ties and NaN) at about half the time on channels-last logits.
"""

from __future__ import annotations

import types
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def is_segmentor(module: nn.Module) -> bool:
    """Whether ``module`` is an mmseg segmentor (False where mmseg is not installed)."""
    try:
        from mmseg.models.segmentors import BaseSegmentor
    except ImportError:
        return False
    return isinstance(module, BaseSegmentor)


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Index of the first largest of the (C, H, W) ``logits`` per pixel, as (1, H, W)."""
    return logits.max(dim=0, keepdim=True).indices


def _original_size_logits(
    logits: torch.Tensor, metainfo: dict, align_corners: bool
) -> torch.Tensor:
    """One image's (1, C, H, W) logits without padding, unflipped, at ``ori_shape``."""
    left, right, top, bottom = metainfo.get(
        'img_padding_size', metainfo.get('padding_size', (0, 0, 0, 0))
    )
    height, width = logits.shape[-2:]
    logits = logits[:, :, top : height - bottom, left : width - right]
    flip_dims = {'horizontal': (3,), 'vertical': (2,)}
    if metainfo.get('flip'):
        direction = metainfo.get('flip_direction')
        if direction not in flip_dims:
            raise ValueError(
                f'flip_direction must be one of {sorted(flip_dims)}, got {direction!r}'
            )
        logits = logits.flip(dims=flip_dims[direction])
    ori_shape = tuple(metainfo['ori_shape'][:2])
    if tuple(logits.shape[-2:]) != ori_shape:
        logits = F.interpolate(logits, size=ori_shape, mode='bilinear', align_corners=align_corners)
    return logits


def _postprocess_result(segmentor, seg_logits: torch.Tensor, data_samples: Optional[List] = None):
    if seg_logits.shape[1] == 1:  # one class: sigmoid and threshold, as mmseg does
        return type(segmentor).postprocess_result(segmentor, seg_logits, data_samples)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    if data_samples is None:
        data_samples = [SegDataSample() for _ in range(seg_logits.shape[0])]
        per_image = list(seg_logits)
    else:
        per_image = [
            _original_size_logits(seg_logits[i : i + 1], sample.metainfo, segmentor.align_corners)[
                0
            ]
            for i, sample in enumerate(data_samples)
        ]
    for sample, logits in zip(data_samples, per_image):
        sample.set_data(
            {
                'seg_logits': PixelData(data=logits),
                'pred_sem_seg': PixelData(data=class_argmax(logits)),
            }
        )
    return data_samples


def use_fast_postprocess(segmentor: nn.Module) -> None:
    """Give the mmseg ``segmentor`` (this instance only) the faster post-processing."""
    segmentor.postprocess_result = types.MethodType(_postprocess_result, segmentor)
