"""The versions of torch and the OpenMMLab packages that mmeffformer supports, checked at import.

mmeffformer installs none of them (they must match each other and the user's CUDA), so
``import mmeffformer`` checks what is installed, as mmdet and mmseg check mmcv and mmengine:
a version outside its range stops the import with the version found, the range and the
command that installs a fitting one. mmdet and mmsegmentation are optional (a backbone
user may have one of them) and checked only when installed. The OneDL fork installs the
same import names under other distribution names and is checked by the same ranges.

``requirements/mminstall.txt`` states the same ranges for pip and mim (a test keeps the two
equal); ``requirements/constraints/`` holds the exact stacks the tests run on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


def version_tuple(version: str) -> Tuple[int, ...]:
    """``'2.1.2+cu121'`` -> ``(2, 1, 2)``: the release numbers, without local tags."""
    match = re.match(r'(\d+(?:\.\d+)*)', version)
    if match is None:
        raise ValueError(f'not a version number: {version!r}')
    return tuple(int(part) for part in match.group(1).split('.'))


@dataclass(frozen=True)
class Supported:
    """A supported range ``[minimum, below)`` of one package (``below=None``: no upper bound)."""

    module: str  # the import name
    distribution: str  # the original OpenMMLab / PyTorch distribution name
    minimum: str
    below: Optional[str] = None
    fork: Optional[str] = None  # the OneDL distribution that provides the same module
    required: bool = True

    @property
    def specifier(self) -> str:
        upper = f',<{self.below}' if self.below else ''
        return f'>={self.minimum}{upper}'

    def admits(self, version: str) -> bool:
        found = version_tuple(version)
        return found >= version_tuple(self.minimum) and (
            self.below is None or found < version_tuple(self.below)
        )

    def install_hint(self) -> str:
        hint = f"pip install '{self.distribution}{self.specifier}'"
        if self.module == 'mmcv':  # PyPI has mmcv's source only; mim picks a prebuilt wheel
            hint = f"mim install '{self.distribution}{self.specifier}'"
        if self.fork:
            hint += f", or the OneDL fork: pip install '{self.fork}{self.specifier}'"
        return hint


#: tested: torch 2.1.2 + mmcv 2.1.0 + mmengine 0.10.7 + mmdet 3.3.0 + mmseg 1.2.2 (classic),
#: torch 2.13.0 with the same (current), torch 2.13.0 + the OneDL packages (onedl)
SUPPORTED: Tuple[Supported, ...] = (
    Supported('torch', 'torch', '2.1.0'),
    Supported('mmcv', 'mmcv', '2.1.0', '2.4.0', fork='onedl-mmcv'),
    Supported('mmengine', 'mmengine', '0.10.7', '0.11.0', fork='onedl-mmengine'),
    Supported('mmdet', 'mmdet', '3.3.0', '3.6.0', fork='onedl-mmdetection', required=False),
    Supported(
        'mmseg', 'mmsegmentation', '1.2.2', '1.5.0', fork='onedl-mmsegmentation', required=False
    ),
)


class UnsupportedVersionError(ImportError):
    """torch or an OpenMMLab package is missing or outside the supported range."""


def installed_version(module: str) -> Optional[str]:
    """The version of the distribution that provides ``module``, None when not installed.

    Read from the package metadata, so mmdet / mmseg are not imported (their own import
    asserts on mmcv's version); a module without metadata (a source tree on ``sys.path``)
    is imported for its ``__version__``.
    """
    if importlib.util.find_spec(module) is None:
        return None
    for distribution in _distributions_of(module):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return getattr(importlib.import_module(module), '__version__', None)


def _distributions_of(module: str) -> Tuple[str, ...]:
    names = [entry.distribution for entry in SUPPORTED if entry.module == module]
    names += [entry.fork for entry in SUPPORTED if entry.module == module and entry.fork]
    return tuple(names)


def check_supported_versions(found: Optional[Dict[str, Optional[str]]] = None) -> None:
    """Raise :class:`UnsupportedVersionError` naming every package outside its range.

    ``found`` maps import names to versions (None: not installed); by default the
    installed versions are read.
    """
    problems = []
    for entry in SUPPORTED:
        version = found[entry.module] if found is not None else installed_version(entry.module)
        if version is None:
            if entry.required:
                problems.append(
                    f'- {entry.distribution} is not installed; mmeffformer needs '
                    f'{entry.distribution}{entry.specifier}: {entry.install_hint()}'
                )
        elif not entry.admits(version):
            problems.append(
                f'- {entry.distribution} {version} is installed; mmeffformer supports '
                f'{entry.distribution}{entry.specifier}: {entry.install_hint()}'
            )
    if problems:
        raise UnsupportedVersionError(
            'mmeffformer cannot run with the installed packages:\n'
            + '\n'.join(problems)
            + '\nThe tested stacks are listed in docs/getting_started.md.'
        )
