"""Reduced-precision helpers of the backbones: the deploy dtypes, and what stays in float32."""

from __future__ import annotations

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
