"""Compatibility fixes for the pinned OpenMMLab stack on recent PyTorch.

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

import types
from typing import Any

import torch


class _TrustedLoadTorch(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module, with trusted loads."""

    def __init__(self) -> None:
        super().__init__('torch')

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault('weights_only', False)
        return torch.load(*args, **kwargs)


def allow_trusted_checkpoints() -> None:
    """Make mmengine's checkpoint loaders work on torch >= 2.6 (idempotent)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint

    if not isinstance(mmengine_checkpoint.torch, _TrustedLoadTorch):
        mmengine_checkpoint.torch = _TrustedLoadTorch()
