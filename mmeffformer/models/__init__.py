"""Models: backbones and the layers they share."""

from .backbones import EfficientFormer, EfficientFormerV2
from .deploy import switch_to_deploy

__all__ = ['EfficientFormer', 'EfficientFormerV2', 'switch_to_deploy']
