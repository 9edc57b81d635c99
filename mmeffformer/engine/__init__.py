"""Training and evaluation machinery: optimizer wrappers, loops, stack fixes, CPU DDP."""

from .amp import amp_optim_wrapper, check_amp
from .distributed import distributed_run, setup_cpu_distributed
from .optimizers import CPUAutocastOptimWrapper, warn_if_bf16_is_emulated
from .runner import AutocastTestLoop, AutocastValLoop, float32_predictions, loop_autocasts

__all__ = [
    'AutocastTestLoop',
    'AutocastValLoop',
    'CPUAutocastOptimWrapper',
    'amp_optim_wrapper',
    'check_amp',
    'distributed_run',
    'float32_predictions',
    'loop_autocasts',
    'setup_cpu_distributed',
    'warn_if_bf16_is_emulated',
]
