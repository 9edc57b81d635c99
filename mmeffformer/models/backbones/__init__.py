"""Registered backbones."""

from .efficientformer import EfficientFormer
from .efficientformer_v2 import EfficientFormerV2

__all__ = ['EfficientFormer', 'EfficientFormerV2']
