"""Tiny backbones and trained-like BatchNorm statistics shared by the tests."""

from __future__ import annotations

from mmeffformer.utils.model_analysis import trained_like as randomise_batchnorm

__all__ = ['TINY_V1', 'randomise_batchnorm']

TINY_V1 = dict(widths=(8, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)
