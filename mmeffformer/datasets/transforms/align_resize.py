"""Data transforms the recipes need."""

from __future__ import annotations

import math
from typing import Tuple

import mmcv
from mmcv.transforms import BaseTransform

from mmeffformer.registry import TRANSFORMS


@TRANSFORMS.register_module()
class AlignResize(BaseTransform):
    """The authors' segmentation test resize: fit ``scale`` keeping the ratio, then
    stretch each side up to a multiple of ``size_divisor``.

    The image is resized with ``interpolation``, segmentation maps (``seg_fields``)
    with nearest neighbour, so labels stay labels.

    Args:
        scale: ``(long, short)`` bound, e.g. ``(2048, 512)``: the long side is at
            most ``long`` and the short side at most ``short``.
        size_divisor: Each output side is rounded up to a multiple of it.
        interpolation: Image interpolation (``'bilinear'``, ``'bicubic'``, ...).

    Example:
        >>> import numpy as np
        >>> out = AlignResize((2048, 512))(dict(img=np.zeros((375, 500, 3), np.uint8)))
        >>> out['img_shape']
        (512, 704)
    """

    def __init__(
        self,
        scale: Tuple[int, int] = (2048, 512),
        size_divisor: int = 32,
        interpolation: str = 'bilinear',
    ) -> None:
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f'scale must be two positive ints (long, short), got {scale!r}')
        if not isinstance(size_divisor, int) or size_divisor <= 0:
            raise ValueError(f'size_divisor must be a positive int, got {size_divisor!r}')
        self.scale = (max(scale), min(scale))
        self.size_divisor = size_divisor
        self.interpolation = interpolation

    def target_size(self, height: int, width: int) -> Tuple[int, int]:
        """``(height, width)`` after fitting and aligning."""
        long_edge, short_edge = self.scale
        ratio = min(long_edge / max(height, width), short_edge / min(height, width))
        fitted_h, fitted_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
        divisor = self.size_divisor
        return math.ceil(fitted_h / divisor) * divisor, math.ceil(fitted_w / divisor) * divisor

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        new_h, new_w = self.target_size(height, width)
        results['img'] = mmcv.imresize(
            results['img'], (new_w, new_h), interpolation=self.interpolation
        )
        for key in results.get('seg_fields', []):
            results[key] = mmcv.imresize(results[key], (new_w, new_h), interpolation='nearest')
        results['img_shape'] = (new_h, new_w)
        results['scale_factor'] = (new_w / width, new_h / height)
        results['keep_ratio'] = True
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(scale={self.scale}, size_divisor={self.size_divisor}, '
            f'interpolation={self.interpolation!r})'
        )
