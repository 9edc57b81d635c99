"""Models: backbones and the layers they share."""

from .backbones import EfficientFormer, EfficientFormerV2

__all__ = ['EfficientFormer', 'EfficientFormerV2']
