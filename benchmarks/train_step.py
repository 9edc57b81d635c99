"""What does one training step cost: time and memory, eager, bf16 and compiled?

The recipes' Semantic FPN (2 images of 512x512, random labels over the 150 classes) and
Mask R-CNN (1 image of 512x512 with 4 boxes and their masks), random weights, AdamW, one
fixed batch; ``train_step`` as mmengine's runner calls it: eager fp32, eager under bf16
autocast (``--amp`` with bf16; only where the CPU has native bf16), and wrapped in
``torch.compile`` as ``tools/train.py --compile`` has the runner do. Each row runs in a
process of its own, so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List

import torch

from benchmarks.common import (
    ROOT,
    TASK_NAMES,
    TASKS,
    VARIANTS,
    fmt,
    section_header,
    table,
)
from mmeffformer.utils import cpu_has_native_bf16

NAME = 'train_step'
TITLE = 'Training step'
QUICK = dict(tasks=['segmentation'], modes=['eager fp32'], steps=2)
SIZE = (512, 512)
MODES = ('eager fp32', 'eager bf16', 'compiled fp32')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variant', default='l1', choices=VARIANTS)
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=MODES)
    parser.add_argument('--steps', type=int, default=5, help='timed steps after two warm-ups')


def segmentation_batch(generator: torch.Generator) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, *SIZE), dtype=torch.uint8, generator=generator))
        sample = SegDataSample(metainfo=dict(img_shape=SIZE, ori_shape=SIZE, pad_shape=SIZE))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, *SIZE), generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def detection_batch(generator: torch.Generator) -> dict:
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    height, width = SIZE
    corners = torch.rand(4, 2, generator=generator) * torch.tensor([width - 160, height - 160])
    sides = 48 + torch.rand(4, 2, generator=generator) * 112
    boxes = torch.cat([corners, corners + sides], 1)
    masks = np.zeros((4, height, width), dtype=np.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.round().int().tolist()):
        mask[y0:y1, x0:x1] = 1
    meta = dict(img_shape=SIZE, ori_shape=SIZE, scale_factor=(1.0, 1.0), flip=False)
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = InstanceData(
        bboxes=boxes,
        labels=torch.randint(0, 80, (4,), generator=generator),
        masks=BitmapMasks(masks, height, width),
    )
    image = torch.randint(0, 256, (3, *SIZE), dtype=torch.uint8, generator=generator)
    return dict(inputs=[image], data_samples=[sample])


BATCHES = {'segmentation': segmentation_batch, 'detection': detection_batch}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_row(task: str, variant: str, mode: str, steps: int) -> dict:
    """Runs in a fresh process: seconds of the first step and median of ``steps`` more."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmeffformer.engine import amp_optim_wrapper
    from mmeffformer.utils import keep_freed_memory
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    keep_freed_memory()  # as the tools do
    before = _peak_mib()
    cfg = Config.fromfile(str(ROOT / 'configs' / TASKS[task].format(variant)))
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg, 'model').train()
    optim = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
    if mode == 'eager bf16':
        optim = amp_optim_wrapper(optim, 'cpu', 'bfloat16')
    if mode.startswith('compiled'):
        model.train_step = torch.compile(model.train_step)  # what mmengine's runner does
    optim_wrapper = build_optim_wrapper(model, optim)
    batch = BATCHES[task](torch.Generator().manual_seed(0))

    def step() -> float:
        start = time.perf_counter()
        model.train_step(copy.deepcopy(batch), optim_wrapper)
        return time.perf_counter() - start

    first = step()
    step()
    seconds = statistics.median(step() for _ in range(steps))
    return dict(first_s=first, s=seconds, rss_before_mib=before, rss_peak_mib=_peak_mib())


def measure(args: argparse.Namespace) -> dict:
    modes = [m for m in args.modes if m != 'eager bf16' or cpu_has_native_bf16()]
    records = []
    spawn = multiprocessing.get_context('spawn')
    for task in args.tasks:
        for mode in modes:
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                row = pool.submit(one_row, task, args.variant, mode, args.steps).result()
            records.append(dict(model=f'{TASK_NAMES[task]} {args.variant}', mode=mode, **row))
            print(records[-1], flush=True)
    method = (
        f'Seconds per step: median of {args.steps} steps after the first and one more; the '
        'first step of a compiled row includes the compilation (shortened by what '
        "Inductor's on-disk cache holds from earlier runs). Memory: the row's process, peak "
        'resident set, before building the model and at the end. bf16 rows only where the '
        'CPU has native bf16.'
    )
    return dict(method=method, records=records)


def render(section: dict, machine: dict) -> List[str]:
    eager: Dict[str, float] = {
        r['model']: r['s'] for r in section['records'] if r['mode'] == 'eager fp32'
    }
    body = []
    for r in section['records']:
        base = eager.get(r['model'])
        body.append(
            [
                r['model'],
                r['mode'],
                f'{r["s"]:.2f}',
                fmt(r['s'] / base if base else None, 2),
                f'{r["first_s"]:.1f}',
                f'{r["rss_peak_mib"]:.0f} ({r["rss_peak_mib"] - r["rss_before_mib"]:.0f})',
            ]
        )
    header = ['model', 'mode', 's / step', 'vs eager fp32 time', 'first step (s)']
    header.append('peak memory MiB (of it for the model and steps)')
    return [*section_header(section), *table(header, body), '']
