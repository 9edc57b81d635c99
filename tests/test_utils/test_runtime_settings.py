"""The process-wide settings of the tools.

keep_freed_memory: feature-map-sized blocks come from the heap and stay there when freed.

What the speed-up rests on, checked through glibc's own accounting (mallinfo2), which
is exact on every run: with glibc's defaults a fresh process maps a 24 MiB block
with mmap and unmaps it on free (so the next forward faults its pages in again);
with freed memory kept, the block is carved from the heap and, freed, stays in the
heap for reuse. The latency effect itself is measured by
``python -m benchmarks backbone_latency --default-allocator`` (a noisy quantity, not bounded
in a test).

flush_denormals and the tools' --keep-denormals run in fresh interpreters (the setting
is per thread and lasts for the process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import ctypes, sys, torch
from mmeffformer.utils import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
        'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == 'keep':
    assert keep_freed_memory()
before = libc.mallinfo2()
block = torch.empty(24 << 20, dtype=torch.uint8)  # a 48 x 256 x 512 float map is 24 MiB
block.fill_(1)
live = libc.mallinfo2()
del block
freed = libc.mallinfo2()
# mapped: the mmap of its own; kept: the free heap bytes the block adds when freed (from
# its live state, so free chunks that it reused at allocation do not count against it)
print(live.hblkhd - before.hblkhd, freed.fordblks - live.fordblks)
"""
MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def mapped_and_kept_bytes(mode: str) -> tuple:
    run = subprocess.run(
        [sys.executable, '-c', SCRIPT, mode], capture_output=True, text=True, check=True
    )
    mapped, kept = run.stdout.split()
    return int(mapped), int(kept)


def test_default_glibc_maps_and_returns_large_blocks():
    mapped, kept = mapped_and_kept_bytes('default')
    assert mapped >= 24 * MIB  # an mmap of its own ...
    assert kept < 24 * MIB  # ... unmapped on free: nothing kept for the next forward


def test_kept_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    mapped, kept = mapped_and_kept_bytes('keep')
    assert mapped < 24 * MIB  # carved from the heap, no mmap of its own
    assert kept >= 24 * MIB  # freed, it stays in the heap, ready for reuse


# A denormal times 2, on enough elements that torch's worker threads share the work.
PROBE = 'import torch; print((torch.full((1 << 20,), 1e-39) * 2).sum().item())'


def run(code: str) -> float:
    # two threads even where the suite gives each worker one: the workers must inherit it
    env = dict(os.environ, OMP_NUM_THREADS='2')
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, check=True, env=env
    )
    return float(done.stdout.split()[-1])


def test_denormals_survive_by_default_and_are_zero_after_flushing():
    assert run(PROBE) > 0
    flushed = 'from mmeffformer.utils import flush_denormals; assert flush_denormals(); '
    assert run(flushed + PROBE) == 0.0


def test_the_tools_flush_unless_asked_to_keep_denormals():
    parse = (
        'import argparse; from mmeffformer.utils.cli import add_common_arguments, parse; '
        'p = argparse.ArgumentParser(); add_common_arguments(p); parse(p, {argv}); '
    )
    assert run(parse.format(argv='[]') + PROBE) == 0.0
    assert run(parse.format(argv="['--keep-denormals']") + PROBE) > 0
