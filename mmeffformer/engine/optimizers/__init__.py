"""Optimizer wrappers, and optimizer settings fitted to the installed torch."""

from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper, warn_if_bf16_is_emulated
from .fused import unfuse_where_unsupported

__all__ = ['CPUAutocastOptimWrapper', 'unfuse_where_unsupported', 'warn_if_bf16_is_emulated']
