"""EfficientFormer and EfficientFormerV2 backbones for OpenMMLab 2.0."""

from .compat import allow_trusted_checkpoints, make_checkpoint_saving_atomic
from .version import __version__

# Importing mmeffformer makes mmengine checkpoints loadable on torch >= 2.6 and
# their saving atomic (see compat.py).
allow_trusted_checkpoints()
make_checkpoint_saving_atomic()

from .amp import make_mmcv_ops_autocast_safe  # noqa: E402
from .registry import MODELS, TRANSFORMS, register_all_modules  # noqa: E402

# ... and mmcv's float32-only CPU ops usable under autocast (see amp.py).
make_mmcv_ops_autocast_safe()

__all__ = ['MODELS', 'TRANSFORMS', '__version__', 'register_all_modules']
