"""Models: backbones, the layers they share, deploy mode.

The mmdet RoI heads are in :mod:`mmeffformer.models.roi_heads`, imported on
their own (by the registry or explicitly) so that the backbones need no mmdet.
"""

from .backbones import EfficientFormer, EfficientFormerV2
from .deploy_mode import switch_to_deploy

__all__ = ['EfficientFormer', 'EfficientFormerV2', 'switch_to_deploy']
