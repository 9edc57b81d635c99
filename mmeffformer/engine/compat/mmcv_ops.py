"""mmcv's compiled CPU RoIAlign / RoIPool / NMS made usable under autocast and on
channels-last features.

Their kernels exist for float32 only (``expected scalar type Float but found
BFloat16``). Under autocast their reduced-precision inputs are cast to float32
first (box coordinates need float32 anyway); a floating result goes back in the
first input's dtype. The kernels also index their inputs as contiguous NCHW
whatever the strides, so channels-last features (what a reduced-precision deploy
backbone gives under autocast) gave wrong RoI features; inputs are made contiguous.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

from mmeffformer.utils.precision import REDUCED_DTYPES


def _in_float32(method: Callable) -> Callable:
    """Wrap an autograd ``Function.forward`` / ``backward``: tensors go in contiguous,
    reduced-precision ones as float32, and a floating result comes back in the first
    input's dtype (mmdet writes RoI features into a buffer of the features' dtype)."""

    @functools.wraps(method)
    def wrapped(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        dtype = tensors[0].dtype if tensors else None
        args = tuple(
            (a.float() if a.dtype in REDUCED_DTYPES else a).contiguous()
            if isinstance(a, torch.Tensor)
            else a
            for a in args
        )
        result = method(ctx, *args, **kwargs)
        if (
            dtype in REDUCED_DTYPES
            and isinstance(result, torch.Tensor)
            and result.is_floating_point()
        ):
            result = result.to(dtype)
        return result

    wrapped.in_float32 = True
    return wrapped


def make_mmcv_ops_autocast_safe() -> None:
    """Run mmcv's float32-only ops in float32 under reduced precision, on contiguous
    inputs (idempotent)."""
    from mmcv.ops.nms import NMSop, SoftNMSop
    from mmcv.ops.roi_align import RoIAlignFunction
    from mmcv.ops.roi_pool import RoIPoolFunction

    for function in (RoIAlignFunction, RoIPoolFunction, NMSop, SoftNMSop):
        for name in ('forward', 'backward'):
            method = function.__dict__.get(name)
            if method is None:  # NMS has no backward of its own
                continue
            method = method.__func__ if isinstance(method, staticmethod) else method
            if not getattr(method, 'in_float32', False):
                setattr(function, name, staticmethod(_in_float32(method)))
