"""Registered backbones."""

from .efficientformer import EfficientFormer

__all__ = ['EfficientFormer']
