"""Fixes to the OpenMMLab stack, each applied at import only where the installed versions
need it, each logged once when it first takes effect, each switched off by
``MMEFFFORMER_DISABLE_FIXES`` (see :mod:`.fixes` and docs/getting_started.md)."""

import functools
from typing import Any, Dict, Optional

from .checkpoints import (
    allow_trusted_checkpoints,
    atomic_saving_needed,
    make_checkpoint_saving_atomic,
    trusted_loading_needed,
)
from .config_packages import config_packages_needed, find_fork_config_packages
from .fixes import APPLIED, DISABLE_ENV, FIX_NAMES, Fix, announce, apply_fixes, disabled_fixes
from .mmcv_ops import make_mmcv_ops_autocast_safe, mmcv_ops_fix_needed


def _url_cache_needed() -> Optional[str]:
    return (
        "mmengine's URL loader downloads without verifying the file's hash or locking "
        'against a second process'
    )


def _register_url_loader() -> None:
    from mmeffformer.checkpoint.download import load_from_url, register_url_loader

    @functools.wraps(load_from_url)
    def load_and_announce(*args: Any, **kwargs: Any) -> Any:
        announce('checkpoint_url_cache')
        return load_from_url(*args, **kwargs)

    register_url_loader(load_and_announce)


FIXES = (
    Fix('trusted_checkpoint_loading', trusted_loading_needed, allow_trusted_checkpoints),
    Fix('atomic_checkpoint_saving', atomic_saving_needed, make_checkpoint_saving_atomic),
    Fix('checkpoint_url_cache', _url_cache_needed, _register_url_loader),
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
