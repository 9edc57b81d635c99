"""Loops."""

from .autocast_loops import (
    AutocastTestLoop,
    AutocastValLoop,
    float32_predictions,
    loop_autocasts,
    return_float32_predictions,
)

__all__ = [
    'AutocastTestLoop',
    'AutocastValLoop',
    'float32_predictions',
    'loop_autocasts',
    'return_float32_predictions',
]
