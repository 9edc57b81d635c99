"""Model analysis shared by tools/get_flops.py and tools/benchmark.py."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def build_model(config: str, part: str) -> Tuple[nn.Module, str]:
    """``(model, scope)``: the whole detector / segmentor, or its backbone only."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    scope = cfg.get('default_scope', 'mmdet')
    cfg.model.backbone.init_cfg = None  # random weights: speed and FLOPs do not care
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    model = MODELS.build(cfg.model if part == 'model' else cfg.model.backbone)
    return model.eval(), scope


def model_call(
    model: nn.Module,
    scope: str,
    part: str,
    batch: int,
    height: int,
    width: int,
    device: str,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Callable[[], object]:
    """A no-argument callable running one inference at the given size."""
    images = torch.rand(batch, 3, height, width, device=device).to(memory_format=memory_format)
    if part == 'backbone':
        return lambda: model(images)
    shape = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width))
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample

        samples = [SegDataSample(metainfo=shape) for _ in range(batch)]
    else:
        from mmdet.structures import DetDataSample

        meta = dict(shape, scale_factor=(1.0, 1.0), batch_input_shape=(height, width))
        samples = [DetDataSample(metainfo=meta) for _ in range(batch)]
    return lambda: model(images, samples, mode='predict')


def flush_denormals() -> bool:
    """Treat denormal floats as zero on this CPU (returns whether it could).

    Training from scratch fills gradients with values below float32's normal
    range (~1e-38); x86 cores handle those in microcode, far slower. Measured on a
    fresh Mask R-CNN step (docs/train_step.md): the fc6 weight-gradient matmul went
    from 254 to 18 ms and the whole step from 2.08 to 1.47 s. The values flushed
    are far below anything a model's output depends on. Per thread: call it before
    torch starts its worker threads, which inherit the setting.
    """
    return torch.set_flush_denormal(True)


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB for reuse (returns success).

    By default glibc returns large freed blocks to the system, so every
    feature map of a forward pass is faulted in again page by page; measured
    here that costs l1 at 512x512 ~30% of its latency and makes it vary
    between runs. Same effect as ``MALLOC_MMAP_THRESHOLD_=33554432
    MALLOC_TRIM_THRESHOLD_=1073741824`` or a caching allocator (jemalloc,
    tcmalloc). Process-wide; the price is memory kept by the process.
    """
    import ctypes

    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mmap_ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
    trim_ok = libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024) == 1
    return mmap_ok and trim_ok


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one call, counted on the aten operators (a multiply-add is 2 FLOPs)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        call()
    return counter.get_total_flops()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def time_call(call: Callable[[], object], warmup: int, repeats: int) -> Dict[str, float]:
    """Latency statistics in milliseconds over ``repeats`` timed calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return dict(
        median=statistics.median(times),
        q1=quartiles[0],
        q3=quartiles[2],
        min=min(times),
        max=max(times),
    )
