"""mmcv's compiled CPU RoIAlign / RoIPool / NMS made usable under autocast and on
channels-last features (fix ``mmcv_ops_float32``).

Their kernels exist for float32 only (``expected scalar type Float but found
BFloat16``). Under autocast their reduced-precision inputs are cast to float32
first (box coordinates need float32 anyway); a floating result goes back in the
first input's dtype. The kernels also index their inputs as contiguous NCHW
whatever the strides, so channels-last features (what a reduced-precision deploy
backbone gives under autocast) gave wrong RoI features; inputs are made contiguous.

Applied only where mmcv has compiled ops and its RoIAlign fails one of the two
(:func:`mmcv_ops_fix_needed` tries both on a few values).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, Callable, Optional

import torch

from mmeffformer.utils.cpu_facts import REDUCED_DTYPES

from .fixes import announce


def _in_float32(method: Callable) -> Callable:
    """Wrap an autograd ``Function.forward`` / ``backward``: tensors go in contiguous,
    reduced-precision ones as float32, and a floating result comes back in the first
    input's dtype (mmdet writes RoI features into a buffer of the features' dtype)."""

    @functools.wraps(method)
    def wrapped(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        dtype = tensors[0].dtype if tensors else None
        if any(t.dtype in REDUCED_DTYPES or not t.is_contiguous() for t in tensors):
            announce('mmcv_ops_float32')
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


def _roi_align_problem() -> Optional[str]:
    """What mmcv's own CPU RoIAlign gets wrong on bf16 or channels-last input, or None."""
    from mmcv.ops import roi_align

    features = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(1, 2, 8, 8) / 64
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0]])
    want = roi_align(features, rois, (2, 2), 1.0, 2, 'avg', True)
    try:
        roi_align(features.bfloat16(), rois.bfloat16(), (2, 2), 1.0, 2, 'avg', True)
    except RuntimeError:
        return 'has no bfloat16 CPU kernels'
    channels_last = features.contiguous(memory_format=torch.channels_last)
    if not torch.allclose(roi_align(channels_last, rois, (2, 2), 1.0, 2, 'avg', True), want):
        return 'reads channels-last inputs as NCHW'
    return None


def mmcv_ops_fix_needed() -> Optional[str]:
    """Why mmcv's CPU ops need the fix here, or None (no compiled ops: nothing to fix)."""
    if importlib.util.find_spec('mmcv._ext') is None:
        return None
    import mmcv

    problem = _roi_align_problem()
    if problem is None:
        return None
    return f'mmcv {mmcv.__version__} RoIAlign {problem}; its ops run on float32 contiguous copies'


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
