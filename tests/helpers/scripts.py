"""The tools and benchmark scripts loaded as modules, so tests call their ``main``.

:func:`run_tool` runs a tool's command line in the test process, as a subprocess would run
it (exit status, stdout, stderr) but without a new interpreter importing torch, mmdet and
mmseg again (~5 s a call). Tests of what a fresh process does (imports, process-wide
settings, DDP, a killed run) keep using subprocesses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List, Optional
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools'


def load_script(path: Path) -> ModuleType:
    """The script at ``path`` (e.g. ``ROOT / 'tools' / 'benchmark.py'``) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ToolRun:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would return."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self) -> ToolRun:
        """This run, after asserting that it exited 0."""
        assert self.returncode == 0, self.stderr[-4000:]
        return self


def _manager_classes() -> List[type]:
    """Every class with mmengine's global instances (loggers, visualizers, message hubs,
    default scopes), subclasses included."""
    from mmengine.utils import ManagerMixin

    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@contextlib.contextmanager
def mmengine_instances_restored() -> Iterator[None]:
    """Drop the global instances a run creates: a second run within the same second (mmengine
    names its instances by the timestamp) would otherwise get the first run's logger, work dir
    and visualizer."""
    before = {cls: dict(cls._instance_dict) for cls in _manager_classes()}
    try:
        yield
    finally:
        for cls in _manager_classes():
            kept = before.get(cls, {})
            for name in [n for n in cls._instance_dict if n not in kept]:
                instance = cls._instance_dict.pop(name)
                if isinstance(instance, logging.Logger):
                    for handler in list(instance.handlers):
                        handler.close()
                        instance.removeHandler(handler)


@contextlib.contextmanager
def _environment(env: Optional[Dict[str, str]], cwd: Optional[Path]) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_tool(
    name: str, *args, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None
) -> ToolRun:
    """``python tools/NAME ARGS`` run in this process: its exit status (an exception is 1,
    its traceback on stderr) and what it printed and logged.

    The process-wide settings a tool makes for its own process (glibc's malloc thresholds,
    flushing denormals) are left out here, so they do not leak into later tests;
    tests/test_utils/test_runtime_settings.py checks them in fresh interpreters."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environment(env, cwd))
        stack.enter_context(mock.patch('mmeffformer.utils.cli.keep_freed_memory'))
        stack.enter_context(mock.patch('mmeffformer.utils.cli.flush_denormals'))
        stack.enter_context(mmengine_instances_restored())
        stack.enter_context(contextlib.redirect_stdout(stdout))
        stack.enter_context(contextlib.redirect_stderr(stderr))
        try:
            result = load_script(TOOLS / name).main([str(a) for a in args])
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code, file=stderr)
        except Exception:  # noqa: BLE001 - a subprocess would print it and exit 1
            traceback.print_exc(file=stderr)
            code = 1
    return ToolRun(code, stdout.getvalue(), stderr.getvalue())
