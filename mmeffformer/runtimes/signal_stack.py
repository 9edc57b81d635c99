"""The thread's alternate signal stack, kept across OpenVINO's model compilation.

On Linux, OpenVINO's CPU plugin gives each compiled model an alternate signal stack of its
own (room for AMX state in a signal frame): compiling sets it on the calling thread and
remembers the one before; destroying the model puts that one back if the model's stack is
still current, then unmaps its own. Models destroyed in the order they were compiled
therefore leave the thread pointing at the first model's unmapped stack, and the next
signal handled on it (Python installs its handlers with ``SA_ONSTACK``: a SIGCHLD when a
subprocess ends, with a DataLoader's handler in place) kills the process with SIGSEGV.
:func:`kept_signal_stack` puts the thread's own stack back after compiling, so no model's
stack is ever current and destroying models in any order changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

SS_DISABLE = 2  # <signal.h>: the thread has no alternate signal stack


class StackT(ctypes.Structure):
    """``stack_t`` of Linux (``<signal.h>``)."""

    _fields_ = [
        ('ss_sp', ctypes.c_void_p),
        ('ss_flags', ctypes.c_int),
        ('ss_size', ctypes.c_size_t),
    ]


@functools.lru_cache(maxsize=1)
def _libc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    except OSError:
        return None


def current_signal_stack() -> Optional[StackT]:
    """The calling thread's alternate signal stack (None where it cannot be read)."""
    libc = _libc()
    if libc is None:
        return None
    stack = StackT()
    if libc.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack


@contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then give the calling thread back the alternate signal stack it had
    before (see the module's docstring for why OpenVINO compilation needs this)."""
    before = current_signal_stack()
    try:
        yield
    finally:
        if before is not None:
            # the flags as sigaltstack(2) takes them: SS_DISABLE or 0 (not SS_ONSTACK)
            before.ss_flags &= SS_DISABLE
            _libc().sigaltstack(ctypes.byref(before), None)
