"""Fixes to the OpenMMLab stack, each applied at import only where the installed versions
need it, each logged once when it first takes effect, each switched off by
``MMEFFFORMER_DISABLE_FIXES`` (see :mod:`.fixes` and docs/getting_started.md)."""

from typing import Dict

from .checkpoints import (
    allow_trusted_checkpoints,
    atomic_saving_needed,
    make_checkpoint_saving_atomic,
    trusted_loading_needed,
    url_cache_needed,
    use_url_cache,
)
from .config_packages import config_packages_needed, find_fork_config_packages
from .fixes import APPLIED, DISABLE_ENV, FIX_NAMES, Fix, apply_fixes, disabled_fixes
from .mmcv_ops import make_mmcv_ops_autocast_safe, mmcv_ops_fix_needed

FIXES = (
    Fix('trusted_checkpoint_loading', trusted_loading_needed, allow_trusted_checkpoints),
    Fix('atomic_checkpoint_saving', atomic_saving_needed, make_checkpoint_saving_atomic),
    Fix('checkpoint_url_cache', url_cache_needed, use_url_cache),
    Fix('mmcv_ops_float32', mmcv_ops_fix_needed, make_mmcv_ops_autocast_safe),
    Fix('fork_config_packages', config_packages_needed, find_fork_config_packages),
)
assert tuple(fix.name for fix in FIXES) == FIX_NAMES


def apply_compat_patches() -> Dict[str, str]:
    """Apply the fixes this stack needs (idempotent); return name -> reason of those applied."""
    return apply_fixes(FIXES)


__all__ = [
    'APPLIED',
    'DISABLE_ENV',
    'FIXES',
    'FIX_NAMES',
    'apply_compat_patches',
    'disabled_fixes',
]
