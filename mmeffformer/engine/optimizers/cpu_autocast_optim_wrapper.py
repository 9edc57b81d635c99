"""Mixed-precision training on CPU: mmengine's ``AmpOptimWrapper`` refuses CPUs."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmeffformer.registry import OPTIM_WRAPPERS
from mmeffformer.utils.cpu_facts import cpu_has_native_bf16, cpu_info


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU bfloat16 autocast (no loss scaling).

    bf16 has float32's exponent range, so no loss scaler is needed.

    Args:
        dtype: only ``'bfloat16'`` (CPU autocast supports no other).
    """

    def __init__(self, *args: Any, dtype: str = 'bfloat16', **kwargs: Any) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'CPU autocast supports dtype bfloat16 only, got {dtype!r}')
        super().__init__(*args, **kwargs)
        warn_if_bf16_is_emulated()

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def warn_if_bf16_is_emulated() -> bool:
    """Log a warning on CPUs without native bfloat16; returns whether it warned."""
    if cpu_has_native_bf16():
        return False
    print_log(
        f'--amp: this CPU ({cpu_info()["model"]}) has no native bfloat16 (no AMX / '
        'AVX512-BF16 flags); bf16 autocast will be slower than float32 here.',
        logger='current',
        level=logging.WARNING,
    )
    return True
