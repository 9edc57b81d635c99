"""Models: backbones, the layers they share, deploy mode.

The mmdet RoI heads are in :mod:`mmeffformer.models.roi_heads`, imported on
their own (by the registry or explicitly) so that the backbones need no mmdet.
"""

from .backbones import EfficientFormer, EfficientFormerV2
from .deploy_mode import (
    compile_deployed,
    reparameterize_modules,
    set_deploy_precision,
    switch_to_deploy,
    use_fast_segmentor_postprocess,
    warm_bias_caches,
)

__all__ = [
    'EfficientFormer',
    'EfficientFormerV2',
    'compile_deployed',
    'reparameterize_modules',
    'set_deploy_precision',
    'switch_to_deploy',
    'use_fast_segmentor_postprocess',
    'warm_bias_caches',
]
