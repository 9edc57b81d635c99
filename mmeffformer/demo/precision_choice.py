"""Which precision the demo trains in: the faster one measured on this machine."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
from mmengine.config import Config

from mmeffformer.utils.cpu_facts import cpu_has_native_bf16, cpu_info

PRECISIONS = ('auto', 'float32', 'bfloat16')


def training_step_seconds(cfg: Config, repeats: int = 2) -> Dict[str, float]:
    """Median seconds of one forward + backward of ``cfg``'s model on one training
    batch, in float32 and under bf16 autocast (alternating, after a warm-up each)."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from mmeffformer.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.update(num_workers=0, persistent_workers=False)
    batch = model.data_preprocessor(next(iter(Runner.build_dataloader(loader_cfg))), True)

    def step(dtype: str) -> float:
        start = time.perf_counter()
        with torch.autocast('cpu', torch.bfloat16, enabled=dtype == 'bfloat16'):
            losses = model(**batch, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: Dict[str, list] = {'float32': [], 'bfloat16': []}
    for dtype in times:
        step(dtype)  # warm-up: first-call kernel selection
    for _ in range(repeats):
        for dtype in times:
            times[dtype].append(step(dtype))
    return {dtype: statistics.median(values) for dtype, values in times.items()}


def choose_precision(
    requested: str, measure: Callable[[], Dict[str, float]], cache: Path
) -> Tuple[str, str]:
    """``(precision, why)``: ``requested`` unless it is ``'auto'``; then float32 on CPUs
    without native bf16, else the faster of the two as measured by ``measure`` (kept
    in ``cache`` per CPU model and torch version, so a second run does not measure)."""
    if requested not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {requested!r}')
    if requested != 'auto':
        return requested, 'chosen with --precision'
    info = cpu_info()
    if not cpu_has_native_bf16():
        return 'float32', f'{info["model"]} has no native bf16 (no AMX / AVX512-BF16)'
    key = f'{info["model"]} | {" ".join(info["bf16_flags"])} | torch {torch.__version__}'
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in known:
        known[key] = measure()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=2))
    seconds = known[key]
    faster = min(seconds, key=seconds.get)
    measured = ', '.join(f'{dtype} {value:.2f} s' for dtype, value in seconds.items())
    return faster, f'faster of the two measured on this CPU, one training step: {measured}'
