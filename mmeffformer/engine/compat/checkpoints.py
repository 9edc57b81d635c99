"""mmengine checkpoint fixes, applied at import where needed (see :mod:`.fixes`).

1. ``trusted_checkpoint_loading``, on torch >= 2.6 with an mmengine that does not pass
   ``weights_only`` (below); local files then go through
   :func:`mmeffformer.checkpoint.reading.read_checkpoint`, so ``load_from``,
   ``--resume`` and ``init_cfg`` also read .safetensors and name a broken file.
2. ``atomic_checkpoint_saving``: mmengine serialises a checkpoint in memory and
   then opens the target with ``'wb'``, so a run killed while writing truncates the
   file, possibly a good checkpoint of the same name. We write to a temporary
   file beside it and ``os.replace`` it into place, which is atomic on POSIX.
3. ``checkpoint_url_cache``: ``http(s)://`` checkpoints through
   :mod:`mmeffformer.checkpoint.download` (one verified, locked download into a cache).

mmengine 0.10.7 calls ``torch.load(path, map_location=...)`` without
``weights_only``. Since torch 2.6 that argument defaults to ``True`` and the
unpickler then refuses mmengine's own checkpoints (they hold a ``HistoryBuffer``,
numpy arrays and config objects), which breaks ``load_from``, ``--resume`` and
``mmdet.apis.init_detector``.

We do not change ``torch.load`` globally. Instead mmengine's checkpoint module
gets a view of ``torch`` whose ``load`` defaults to ``weights_only=False``,
restoring exactly the behaviour mmengine was written for: a checkpoint file is
trusted code, as it was before torch 2.6. Callers that pass ``weights_only``
explicitly keep their choice.
"""

from __future__ import annotations

import functools
import os
import types
from pathlib import Path
from typing import Any, Callable, Optional

import mmengine
import torch

from mmeffformer.utils.torch_features import torch_at_least

from .fixes import announce


class _TrustedLoadTorch(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module, with trusted loads."""

    def __init__(self) -> None:
        super().__init__('torch')

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(file: Any, *args: Any, **kwargs: Any) -> Any:
        announce('trusted_checkpoint_loading')
        if isinstance(file, (str, os.PathLike)):
            # a local file: .safetensors too, and errors that name the file
            from mmeffformer.checkpoint.reading import read_checkpoint

            return read_checkpoint(file, *args, **kwargs)
        kwargs.setdefault('weights_only', False)
        return torch.load(file, *args, **kwargs)


def _source_of(module: types.ModuleType) -> str:
    """The module's source file as installed ('' without one: assume the original code)."""
    try:
        return Path(module.__file__).read_text(encoding='utf-8')
    except (OSError, TypeError, ValueError):
        return ''


def trusted_loading_needed() -> Optional[str]:
    """Why mmengine's checkpoint loading needs the fix here, or None."""
    from mmengine.runner import checkpoint as mmengine_checkpoint

    if not torch_at_least('2.6'):
        return None
    # OneDL's mmengine (0.10.8 on) loads through its own weights_only-aware helper
    if 'weights_only' in _source_of(mmengine_checkpoint):
        return None
    return (
        f'torch {torch.__version__} loads with weights_only=True by default and mmengine '
        f'{mmengine.__version__} does not pass weights_only=False, so its own checkpoints '
        'would be refused'
    )


def allow_trusted_checkpoints() -> None:
    """Make mmengine's checkpoint loaders work on torch >= 2.6 (idempotent)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint

    if not isinstance(mmengine_checkpoint.torch, _TrustedLoadTorch):
        mmengine_checkpoint.torch = _TrustedLoadTorch()


def _atomic(save: Callable) -> Callable:
    @functools.wraps(save)
    def atomic_save(checkpoint: dict, filename: str, *args: Any, **kwargs: Any) -> None:
        if '://' in str(filename):  # remote backends: leave them to mmengine
            return save(checkpoint, filename, *args, **kwargs)
        announce('atomic_checkpoint_saving')
        temporary = f'{filename}.partial-{os.getpid()}'
        try:
            save(checkpoint, temporary, *args, **kwargs)
            os.replace(temporary, filename)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    atomic_save.is_atomic = True
    return atomic_save


def atomic_saving_needed() -> Optional[str]:
    """Why mmengine's checkpoint saving needs the fix: every supported mmengine (0.10.7,
    OneDL's 0.10.12) writes through its file backend straight into the target file."""
    return (
        f'mmengine {mmengine.__version__} writes a checkpoint in place, so a run killed '
        'while saving would leave a truncated file'
    )


def make_checkpoint_saving_atomic() -> None:
    """Route mmengine's ``save_checkpoint`` (also as the runner uses it) through a
    temporary file (idempotent)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    from mmengine.runner import runner as mmengine_runner

    if not getattr(mmengine_checkpoint.save_checkpoint, 'is_atomic', False):
        mmengine_checkpoint.save_checkpoint = _atomic(mmengine_checkpoint.save_checkpoint)
    mmengine_runner.save_checkpoint = mmengine_checkpoint.save_checkpoint


def url_cache_needed() -> Optional[str]:
    """Why mmengine's URL checkpoints go through our cache: every supported mmengine
    downloads them unverified and unlocked."""
    return (
        "mmengine's URL loader downloads without verifying the file's hash or locking "
        'against a second process'
    )


def use_url_cache() -> None:
    """Load ``http(s)://`` checkpoints through the verified cache (idempotent)."""
    from mmeffformer.checkpoint.download import load_from_url, register_url_loader

    @functools.wraps(load_from_url)
    def load_and_announce(*args: Any, **kwargs: Any) -> Any:
        announce('checkpoint_url_cache')
        return load_from_url(*args, **kwargs)

    register_url_loader(load_and_announce)
