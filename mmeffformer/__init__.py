"""EfficientFormer and EfficientFormerV2 backbones for OpenMMLab 2.0."""

from .compat import allow_trusted_checkpoints, make_checkpoint_saving_atomic
from .version import __version__

# Importing mmeffformer makes mmengine checkpoints loadable on torch >= 2.6 and
# their saving atomic (see compat.py).
allow_trusted_checkpoints()
make_checkpoint_saving_atomic()

from .registry import MODELS, TRANSFORMS, register_all_modules  # noqa: E402

__all__ = ['MODELS', 'TRANSFORMS', '__version__', 'register_all_modules']
