"""Semantic FPN l1 training steps at 512x512 (batch 2, AdamW): step time and peak memory.

Usage: python benchmarks/segmentor_training.py [--repeats 5]
Peak resident memory is the process's, so run it in a process of its own (as
``benchmarks/run_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import recipe  # noqa: E402
from mmeffformer.utils import keep_freed_memory  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402


def train_step(repeats: int) -> dict:
    """Median step time after one step, and resident memory before and at the peak."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    model, _ = build_model(recipe('l1', (512, 512)), 'model')
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    samples = []
    for _ in range(2):
        meta = dict(img_shape=(512, 512), ori_shape=(512, 512), pad_shape=(512, 512))
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 512, 512)))
        samples.append(sample)
    images = torch.rand(2, 3, 512, 512)

    def step() -> None:
        losses = model(images, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    return dict(step_ms=times[len(times) // 2], rss_before_mb=before, rss_peak_mb=peak)


def render(results: dict) -> List[str]:
    train = results['train']
    return [
        '',
        '## Semantic FPN l1 training step (512x512, batch 2, AdamW, separate process)',
        '',
        f'- step time: {train["step_ms"]:.0f} ms (median of {results["machine"]["repeats"]} '
        'steps after 1)',
        f'- peak resident memory: {train["rss_peak_mb"]:.0f} MiB '
        f'({train["rss_before_mb"]:.0f} MiB before the first step, i.e. '
        f'{train["rss_peak_mb"] - train["rss_before_mb"]:.0f} MiB for the steps)',
        '',
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: all)')
    parser.add_argument('--json', action='store_true', help='print the figures as JSON')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    train = train_step(args.repeats)
    if args.json:
        print(json.dumps(train))
    else:
        print('\n'.join(render(dict(train=train, machine=dict(repeats=args.repeats)))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
