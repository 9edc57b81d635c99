"""EfficientFormer and EfficientFormerV2 backbones for OpenMMLab 2.0."""

from .compat import allow_trusted_checkpoints
from .version import __version__

# Importing mmeffformer is what makes mmengine checkpoints loadable on torch>=2.6.
allow_trusted_checkpoints()

from .registry import MODELS, TRANSFORMS, register_all_modules  # noqa: E402

__all__ = ['MODELS', 'TRANSFORMS', '__version__', 'register_all_modules']
