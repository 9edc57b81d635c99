"""Optimizer wrappers."""

from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper, warn_if_bf16_is_emulated

__all__ = ['CPUAutocastOptimWrapper', 'warn_if_bf16_is_emulated']
