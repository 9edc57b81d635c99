"""Code run in a new interpreter, where nothing is imported yet."""

from __future__ import annotations

import subprocess
import sys


def run_fresh(code: str, cwd=None) -> str:
    """stdout of ``code`` run in a new interpreter (nothing imported yet)."""
    run = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=cwd
    )
    return run.stdout.strip()
