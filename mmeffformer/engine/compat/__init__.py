"""Fixes to the pinned OpenMMLab stack, applied once when mmeffformer is imported."""

from .checkpoints import allow_trusted_checkpoints, make_checkpoint_saving_atomic
from .mmcv_ops import make_mmcv_ops_autocast_safe


def apply_compat_patches() -> None:
    """Apply every fix (idempotent): trusted and atomic mmengine checkpoints on
    torch >= 2.6, checkpoint URLs through a verified download cache, mmcv's
    float32-only CPU ops usable under autocast."""
    from mmeffformer.checkpoint.download import register_url_loader

    allow_trusted_checkpoints()
    make_checkpoint_saving_atomic()
    register_url_loader()
    make_mmcv_ops_autocast_safe()


__all__ = [
    'allow_trusted_checkpoints',
    'apply_compat_patches',
    'make_checkpoint_saving_atomic',
    'make_mmcv_ops_autocast_safe',
]
