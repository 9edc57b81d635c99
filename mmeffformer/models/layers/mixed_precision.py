"""Reduced-precision helpers of the backbones: the deploy dtypes, and what stays in float32."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Type

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


def cast_floating_point(
    module: nn.Module, dtype: torch.dtype, keep: Tuple[Type[nn.Module], ...] = ()
) -> None:
    """Cast the floating-point parameters and buffers of ``module`` to ``dtype``, except
    in submodules of the types in ``keep`` (converted from the original values, so a
    kept module never goes through a rounding round trip)."""
    if isinstance(module, keep):
        return
    module._apply(lambda t: t.to(dtype) if t.is_floating_point() else t, recurse=False)
    for child in module.children():
        cast_floating_point(child, dtype, keep)


class ReducedPrecisionBranch(nn.Module):
    """Run ``module`` in ``dtype`` inside a float32 residual stream.

    Tensor inputs are cast to ``dtype``; the output is cast to ``output_dtype``, or left
    in ``dtype`` when that is None (a residual ``x + branch(x)`` with a float32 ``x``
    promotes it to float32, so the stream is never rounded to ``dtype``).
    """

    def __init__(
        self, module: nn.Module, dtype: torch.dtype, output_dtype: Optional[torch.dtype] = None
    ) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype
        self.output_dtype = output_dtype

    def forward(self, *args: Any) -> torch.Tensor:
        args = tuple(a.to(self.dtype) if isinstance(a, torch.Tensor) else a for a in args)
        out = self.module(*args)
        return out if self.output_dtype is None else out.to(self.output_dtype)
