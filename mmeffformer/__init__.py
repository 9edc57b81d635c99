"""EfficientFormer and EfficientFormerV2 backbones for OpenMMLab 2.0."""

from .supported_versions import check_supported_versions

# as mmdet and mmseg do: an unsupported torch / mmcv / mmengine / mmdet / mmseg stops the
# import with the version found, the supported range and the command that installs one
check_supported_versions()

from .engine.compat import apply_compat_patches  # noqa: E402
from .registry import MODELS, TRANSFORMS  # noqa: E402
from .utils import register_all_modules  # noqa: E402
from .version import __version__  # noqa: E402

# Fixes to the installed OpenMMLab stack, each applied only where these versions need it
# and logged once when it first takes effect (mmeffformer.engine.compat).
apply_compat_patches()

__all__ = ['MODELS', 'TRANSFORMS', '__version__', 'register_all_modules']
