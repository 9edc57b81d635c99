"""Loops."""

from .autocast_loops import (
    AutocastTestLoop,
    AutocastValLoop,
    float32_predictions,
    return_float32_predictions,
)

__all__ = [
    'AutocastTestLoop',
    'AutocastValLoop',
    'float32_predictions',
    'return_float32_predictions',
]
