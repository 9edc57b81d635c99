"""torch.compile support: a clear refusal on an old torch or without a C++ compiler, a
compile-time report."""

from __future__ import annotations

from .torch_features import require_torch

#: compiled deploy uses dynamo's ``recompile_limit`` and Inductor's ``cpp_builder`` (both in
#: torch 2.7); tested on torch 2.13
COMPILE_MIN_TORCH = '2.7'


def check_compiler_available(feature: str = 'compile=True') -> None:
    """Raise, naming ``feature`` and the cause, when torch is older than
    :data:`COMPILE_MIN_TORCH` or Inductor cannot build CPU kernels (no C++ compiler)."""
    require_torch(feature, COMPILE_MIN_TORCH)
    from torch._inductor import config
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as error:  # Inductor raises its own InvalidCxxCompiler
        raise RuntimeError(
            f'{feature} needs a C++ compiler for torch.compile (Inductor) on the CPU, and '
            f'none was found (searched {config.cpp.cxx}): {error}. Install g++ (or set CXX), '
            f'or run without compiling.'
        ) from error


def compile_report() -> str:
    """Graphs compiled so far in this process and the time spent compiling them."""
    from torch._dynamo.utils import compilation_time_metrics, counters

    seconds = sum(compilation_time_metrics.get('_compile.compile_inner', []))
    return f'{counters["stats"]["unique_graphs"]} graph(s) compiled in {seconds:.1f} s'
