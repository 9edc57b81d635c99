"""Tiny backbones and trained-like BatchNorm statistics shared by the tests."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from mmengine.config import Config

from mmeffformer.utils.model_analysis import build_model_from_cfg
from mmeffformer.utils.model_analysis import trained_like as randomise_batchnorm

__all__ = ['TINY_V1', 'randomise_batchnorm', 'save_random_checkpoint']

TINY_V1 = dict(widths=(8, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)


def save_random_checkpoint(config: Path, checkpoint: Path) -> nn.Module:
    """The config's model with seeded random weights and trained-like BatchNorm statistics,
    saved as an mmengine checkpoint; returns the model."""
    torch.manual_seed(0)
    model = build_model_from_cfg(Config.fromfile(str(config)))
    randomise_batchnorm(model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return model
