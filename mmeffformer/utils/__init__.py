"""Helpers: CPU facts, process settings, timing, the token-offset rule of the attention
biases, and ``register_all_modules`` (where mmengine looks for it).

The tools' shared options, :mod:`mmeffformer.utils.cli`, are not imported here:
they depend on :mod:`mmeffformer.engine`, which uses these helpers.
"""

from .cpu_facts import REDUCED_DTYPES, cpu_has_native_bf16, cpu_info
from .runtime_settings import flush_denormals, keep_freed_memory
from .setup_env import register_all_modules
from .timing import interleaved_medians, matmul_gflops, time_call, timed_rounds

__all__ = [
    'REDUCED_DTYPES',
    'cpu_has_native_bf16',
    'cpu_info',
    'flush_denormals',
    'interleaved_medians',
    'keep_freed_memory',
    'matmul_gflops',
    'register_all_modules',
    'time_call',
    'timed_rounds',
]
