"""What this CPU computes natively, and which dtypes count as reduced precision."""

from __future__ import annotations

import functools
import platform
from typing import Dict

import torch

#: the dtypes autocast and the deploy modes compute in besides float32
REDUCED_DTYPES = (torch.float16, torch.bfloat16)


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
