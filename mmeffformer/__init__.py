"""EfficientFormer and EfficientFormerV2 backbones for OpenMMLab 2.0."""

from .engine.compat import apply_compat_patches
from .registry import MODELS, TRANSFORMS
from .utils import register_all_modules
from .version import __version__

# Importing mmeffformer makes mmengine checkpoints loadable on torch >= 2.6, their
# saving atomic, checkpoint URLs downloaded once into a verified cache, and mmcv's
# float32-only CPU ops usable under autocast (see mmeffformer.engine.compat).
apply_compat_patches()

__all__ = ['MODELS', 'TRANSFORMS', '__version__', 'register_all_modules']
