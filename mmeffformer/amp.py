"""Mixed precision with the pinned OpenMMLab stack, on CPU (bf16) and CUDA.

Two gaps are filled here, without editing installed packages:

1. mmengine's ``AmpOptimWrapper`` refuses CPUs. :class:`CPUAutocastOptimWrapper`
   runs the forward under ``torch.autocast('cpu', dtype=torch.bfloat16)``; bf16 has
   float32's exponent range, so no loss scaler is needed.
2. mmcv's compiled CPU RoIAlign / RoIPool / NMS kernels exist for float32 only
   (``expected scalar type Float but found BFloat16``). Under autocast their
   reduced-precision inputs are cast to float32 first (the ops are a small part of
   the time, and box coordinates need float32 anyway). Importing mmeffformer does it.
3. mmengine's ``fp16`` val / test loops hand the autocast predictions (bf16 scores,
   boxes, logits) to the metrics, and numpy has no bfloat16 (``TypeError: Got
   unsupported ScalarType BFloat16`` in mmdet's CocoMetric). The
   ``mmeffformer.Autocast{Val,Test}Loop`` return float32 predictions.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, Callable, Iterator

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.structures import BaseDataElement

from mmeffformer.registry import LOOPS, OPTIM_WRAPPERS

from .models.layers.precision import cpu_has_native_bf16, cpu_info

REDUCED = (torch.float16, torch.bfloat16)


def _in_float32(method: Callable) -> Callable:
    """Wrap an autograd ``Function.forward`` / ``backward``: reduced-precision tensors
    go in as float32, and a floating result comes back in the first input's dtype
    (mmdet writes RoI features into a buffer of the features' dtype)."""

    @functools.wraps(method)
    def wrapped(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        dtype = tensors[0].dtype if tensors else None
        args = tuple(
            a.float() if isinstance(a, torch.Tensor) and a.dtype in REDUCED else a for a in args
        )
        result = method(ctx, *args, **kwargs)
        if dtype in REDUCED and isinstance(result, torch.Tensor) and result.is_floating_point():
            result = result.to(dtype)
        return result

    wrapped.in_float32 = True
    return wrapped


def make_mmcv_ops_autocast_safe() -> None:
    """Run mmcv's float32-only ops in float32 under reduced precision (idempotent)."""
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


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU bfloat16 autocast (no loss scaling).

    Args:
        dtype: only ``'bfloat16'`` (CPU autocast supports no other).
    """

    def __init__(self, *args: Any, dtype: str = 'bfloat16', **kwargs: Any) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'CPU autocast supports dtype bfloat16 only, got {dtype!r}')
        super().__init__(*args, **kwargs)
        warn_if_bf16_is_emulated()

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def warn_if_bf16_is_emulated() -> bool:
    """Log a warning on CPUs without native bfloat16; returns whether it warned."""
    if cpu_has_native_bf16():
        return False
    print_log(
        f'--amp: this CPU ({cpu_info()["model"]}) has no native bfloat16 (no AMX / '
        'AVX512-BF16 flags); bf16 autocast will be slower than float32 here.',
        logger='current',
        level=logging.WARNING,
    )
    return True


def amp_optim_wrapper(optim_wrapper: dict, device: str, dtype: str) -> dict:
    """``optim_wrapper`` config turned into mixed precision for ``device`` ('cpu' / 'cuda').

    CUDA: mmengine's ``AmpOptimWrapper`` (float16 with dynamic loss scaling, or
    bfloat16); CPU: :class:`CPUAutocastOptimWrapper` (bfloat16 only).
    """
    check_amp(device, dtype)
    wrapper = dict(optim_wrapper)
    if device == 'cuda':
        wrapper.update(type='AmpOptimWrapper', dtype=dtype)
        if dtype == 'float16':
            wrapper['loss_scale'] = 'dynamic'
        return wrapper
    wrapper.update(type='mmeffformer.CPUAutocastOptimWrapper', dtype='bfloat16')
    return wrapper


def check_amp(device: str, dtype: str) -> None:
    """Raise a ValueError naming an unsupported ``--amp`` device or dtype."""
    if dtype not in ('bfloat16', 'float16'):
        raise ValueError(f'--amp-dtype must be bfloat16 or float16, got {dtype!r}')
    if device not in ('cpu', 'cuda'):
        raise ValueError(f'--amp supports cpu and cuda, not {device!r}')
    if device == 'cpu' and dtype != 'bfloat16':
        raise ValueError(
            f'--amp-dtype {dtype} is not supported on CPU (torch CPU autocast is bfloat16 '
            'only); use --amp-dtype bfloat16'
        )


def float32_predictions(outputs: Any) -> Any:
    """``outputs`` with every reduced-precision tensor (inside data samples too) in float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.dtype in REDUCED else outputs
    if isinstance(outputs, BaseDataElement):
        for key, value in list(outputs.items()):
            converted = float32_predictions(value)
            if converted is not value:
                setattr(outputs, key, converted)
        return outputs
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(float32_predictions(item) for item in outputs)
    if isinstance(outputs, dict):
        return {key: float32_predictions(value) for key, value in outputs.items()}
    return outputs


def return_float32_predictions(model: Any, step: str) -> None:
    """Wrap ``model.<step>`` (``val_step`` / ``test_step``) so its predictions are float32."""
    inner = getattr(model, step)

    @functools.wraps(inner)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return float32_predictions(inner(*args, **kwargs))

    setattr(model, step, wrapped)


@LOOPS.register_module()
class AutocastValLoop(ValLoop):
    """``ValLoop(fp16=True)`` whose predictions reach the metrics and hooks in float32."""

    def __init__(self, runner: Any, dataloader: Any, evaluator: Any, fp16: bool = True) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        return_float32_predictions(runner.model, 'val_step')


@LOOPS.register_module()
class AutocastTestLoop(TestLoop):
    """``TestLoop(fp16=True)`` whose predictions reach the metrics and hooks in float32."""

    def __init__(self, runner: Any, dataloader: Any, evaluator: Any, fp16: bool = True) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        return_float32_predictions(runner.model, 'test_step')
