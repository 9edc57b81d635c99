"""``mmdet::`` / ``mmseg::`` base configs found when a fork provides the package (fix
``fork_config_packages``).

mmengine resolves ``_base_ = ['mmseg::...']`` through its table of distribution names
(``mmseg`` -> ``mmsegmentation``) and refuses a package whose distribution is not installed
under that name. The OneDL fork installs ``mmseg`` as ``onedl-mmsegmentation``, so every
config built on an mmseg config failed there with "mmsegmentation is not installed". The
table entry is pointed at the distribution that is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from typing import Any, Callable, Dict, Optional

from mmeffformer.supported_versions import SUPPORTED

from .fixes import announce


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def renamed_packages() -> Dict[str, str]:
    """module -> the installed distribution, for each module mmengine would look up under a
    distribution name that is not installed while a fork's is."""
    from mmengine.config.utils import MODULE2PACKAGE

    renames = {}
    for entry in SUPPORTED:
        expected = MODULE2PACKAGE.get(entry.module)
        if expected is None or not entry.fork:
            continue
        if _installed(expected) or importlib.util.find_spec(expected) is not None:
            continue  # what mmengine's is_installed accepts (mmdet: the module name)
        if importlib.util.find_spec(entry.module) is not None and _installed(entry.fork):
            renames[entry.module] = entry.fork
    return renames


def config_packages_needed() -> Optional[str]:
    """Why mmengine's config package table needs the fix here, or None."""
    renames = renamed_packages()
    if not renames:
        return None
    named = ', '.join(f'{module}:: configs under {dist}' for module, dist in renames.items())
    return f'mmengine looks for the original distributions; this fix finds {named}'


def _announcing(resolve: Callable, renamed: set) -> Callable:
    @functools.wraps(resolve)
    def resolve_and_announce(cfg_path: str) -> Any:
        package, path = resolve(cfg_path)
        if package in renamed:
            announce('fork_config_packages')
        return package, path

    resolve_and_announce.is_fork_aware = True
    return resolve_and_announce


def find_fork_config_packages() -> None:
    """Point mmengine's table at the installed distributions (idempotent)."""
    from mmengine.config import config as mmengine_config
    from mmengine.config.utils import MODULE2PACKAGE

    renames = renamed_packages()
    MODULE2PACKAGE.update(renames)  # the dict mmengine reads (PKG2PROJECT is the same)
    resolve = mmengine_config._get_package_and_cfg_path
    if not getattr(resolve, 'is_fork_aware', False):
        mmengine_config._get_package_and_cfg_path = _announcing(resolve, set(renames.values()))
