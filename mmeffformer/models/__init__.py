"""Models: backbones and the layers they share."""

from .backbones import EfficientFormer

__all__ = ['EfficientFormer']
