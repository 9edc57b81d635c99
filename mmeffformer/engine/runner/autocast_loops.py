"""Evaluation loops under autocast whose predictions reach the metrics in float32.

mmengine's ``fp16`` val / test loops hand the autocast predictions (bf16 scores,
boxes, logits) to the metrics, and numpy has no bfloat16 (``TypeError: Got
unsupported ScalarType BFloat16`` in mmdet's CocoMetric).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from mmengine.runner import TestLoop, ValLoop
from mmengine.structures import BaseDataElement

from mmeffformer.registry import LOOPS
from mmeffformer.utils.cpu_facts import REDUCED_DTYPES


def loop_autocasts(loop_cfg: Any) -> bool:
    """Whether a ``val_cfg`` / ``test_cfg`` runs its model under autocast: mmengine's
    ``fp16=True``, or one of these loops without ``fp16=False``."""
    if not isinstance(loop_cfg, dict):
        return False
    ours = str(loop_cfg.get('type', '')).split('.')[-1] in ('AutocastValLoop', 'AutocastTestLoop')
    return bool(loop_cfg.get('fp16', ours))


def float32_predictions(outputs: Any) -> Any:
    """``outputs`` with every reduced-precision tensor (inside data samples too) in float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.dtype in REDUCED_DTYPES else outputs
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
