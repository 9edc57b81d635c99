"""Evaluation: metrics beyond mmdet's / mmseg's own."""

from .metrics import ClasswiseIoUMetric

__all__ = ['ClasswiseIoUMetric']
