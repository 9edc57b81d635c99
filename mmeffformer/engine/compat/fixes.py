"""The bookkeeping of the stack fixes: which are switched off, which apply, one log line each.

A fix is applied at import only where the installed versions have the problem it fixes
(its ``needed`` check returns the reason). The first time an applied fix changes what
happens (a checkpoint loaded or saved through it, an op computed in float32), it logs one
line naming itself, the reason and how to switch it off.

``MMEFFFORMER_DISABLE_FIXES`` switches fixes off: a comma-separated list of their names
(:data:`FIX_NAMES`), or ``all``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Optional

from mmengine.logging import print_log

DISABLE_ENV = 'MMEFFFORMER_DISABLE_FIXES'

#: every fix, in the order they are applied
FIX_NAMES = (
    'trusted_checkpoint_loading',
    'atomic_checkpoint_saving',
    'checkpoint_url_cache',
    'mmcv_ops_float32',
    'fork_config_packages',
)


@dataclass
class Fix:
    """One fix: ``needed()`` returns why it is needed here (None: not needed), ``apply()``
    installs it (idempotent)."""

    name: str
    needed: Callable[[], Optional[str]]
    apply: Callable[[], None]


#: name -> the reason of each fix applied in this process
APPLIED: Dict[str, str] = {}
_announced: set = set()


def disabled_fixes() -> FrozenSet[str]:
    """The fix names switched off by ``MMEFFFORMER_DISABLE_FIXES``."""
    value = os.environ.get(DISABLE_ENV, '').strip()
    if not value:
        return frozenset()
    if value == 'all':
        return frozenset(FIX_NAMES)
    names = frozenset(name.strip() for name in value.split(',') if name.strip())
    unknown = sorted(names - set(FIX_NAMES))
    if unknown:
        raise ValueError(
            f'{DISABLE_ENV}={value!r} names unknown fixes {unknown}; '
            f'accepted: {", ".join(FIX_NAMES)}, or all'
        )
    return names


def apply_fixes(fixes: tuple) -> Dict[str, str]:
    """Apply each fix that is needed here and not switched off; return the applied ones."""
    off = disabled_fixes()
    for fix in fixes:
        if fix.name in off or fix.name in APPLIED:
            continue
        reason = fix.needed()
        if reason is not None:
            fix.apply()
            APPLIED[fix.name] = reason
    return dict(APPLIED)


def announce(name: str) -> None:
    """Log, once per process, that fix ``name`` has just changed what happens."""
    if name in _announced:
        return
    _announced.add(name)
    print_log(
        f'mmeffformer fix {name!r} applies: {APPLIED.get(name, "")} '
        f'(switch it off with {DISABLE_ENV}={name})',
        logger='current',
    )
