"""Reduced-precision helpers: what stays in float32, and what the CPU supports natively."""

from __future__ import annotations

import functools
import platform
from typing import Dict

import torch
import torch.nn as nn

#: dtypes a deployed backbone can compute in
DEPLOY_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_deploy_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` if a backbone can be deployed in it; a ValueError naming it otherwise."""
    if dtype not in DEPLOY_DTYPES:
        raise ValueError(
            f'Unsupported deploy dtype {dtype!r}; choose one of '
            f'{[str(d).replace("torch.", "") for d in DEPLOY_DTYPES]}'
        )
    return dtype


class Float32Norm(nn.Module):
    """Run a LayerNorm / GroupNorm in float32 inside a reduced-precision model.

    Their statistics are sums of squares over many channels, which overflow
    float16 for activations above 256 if a kernel accumulates in the input type.
    PyTorch's CPU kernels accumulate in float32 (measured: same features with or
    without this wrapper, fp16 and bf16, activations ~1e4); the wrapper keeps other
    kernels safe at the cost of a cast in and out.
    """

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


@functools.lru_cache(maxsize=1)
def cpu_info() -> Dict[str, object]:
    """CPU model name and its reduced-precision flags (Linux ``/proc/cpuinfo``)."""
    model, flags = '', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not model:
                    model = value.strip()
                elif key == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    bf16_flags = sorted(flags & {'amx_bf16', 'avx512_bf16', 'amx_tile', 'amx_fp16'})
    return dict(model=model, bf16_flags=bf16_flags)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AMX or AVX512-BF16); elsewhere
    PyTorch emulates it and bf16 is slower than float32."""
    flags = set(cpu_info()['bf16_flags'])
    return bool(flags & {'amx_bf16', 'avx512_bf16'})
