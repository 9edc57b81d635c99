"""The one timing helper of the tools and benchmarks: warm-ups, then timed rounds."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import torch


def timed_rounds(
    calls: Dict[str, Callable[[], object]], warmup: int, repeats: int
) -> Dict[str, List[float]]:
    """Milliseconds of every call in each of ``repeats`` rounds, after ``warmup`` calls each.

    The calls of a round run in turns (a, b, c, a, b, c, ...), so a slow phase of the
    machine hits every call alike and their ratios stay fair.
    """
    times: Dict[str, List[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(warmup):
                call()
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def time_call(call: Callable[[], object], warmup: int, repeats: int) -> Dict[str, float]:
    """Latency statistics in milliseconds over ``repeats`` timed calls."""
    times = timed_rounds({'call': call}, warmup, repeats)['call']
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return dict(
        median=statistics.median(times),
        q1=quartiles[0],
        q3=quartiles[2],
        min=min(times),
        max=max(times),
    )


def interleaved_medians(
    calls: Dict[str, Callable[[], object]], warmup: int, repeats: int
) -> Dict[str, float]:
    """Median milliseconds of each call, the calls timed in turns (see :func:`timed_rounds`)."""
    times = timed_rounds(calls, warmup, repeats)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_gflops(
    warmup: int, repeats: int, dtype: torch.dtype = torch.float32, side: int = 2048
) -> float:
    """GFLOP/s of a ``side`` x ``side`` matrix product in ``dtype`` on this machine."""
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    return 2 * side**3 / time_call(lambda: a @ b, warmup, repeats)['median'] / 1e6
