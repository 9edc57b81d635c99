"""flush_denormals and the tools' --keep-denormals, in fresh interpreters (the setting
is per thread and lasts for the process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A denormal times 2, on enough elements that torch's worker threads share the work.
PROBE = 'import torch; print((torch.full((1 << 20,), 1e-39) * 2).sum().item())'


def run(code: str) -> float:
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return float(done.stdout.split()[-1])


def test_denormals_survive_by_default_and_are_zero_after_flushing():
    assert run(PROBE) > 0
    flushed = 'from mmeffformer.analysis import flush_denormals; assert flush_denormals(); '
    assert run(flushed + PROBE) == 0.0


def test_the_tools_flush_unless_asked_to_keep_denormals():
    parse = (
        'import argparse; from mmeffformer.cli import add_common_arguments, parse; '
        'p = argparse.ArgumentParser(); add_common_arguments(p); parse(p, {argv}); '
    )
    assert run(parse.format(argv='[]') + PROBE) == 0.0
    assert run(parse.format(argv="['--keep-denormals']") + PROBE) > 0
