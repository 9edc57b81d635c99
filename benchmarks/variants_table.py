"""Params, FLOPs and CPU latency of every variant, as a markdown table (one run).

Usage: python benchmarks/variants_table.py [--shape H W] [--repeats R] > docs/variants.md

Backbone figures at the detection size; whole-model FLOPs for Mask R-CNN and
Semantic FPN (512 x 512). Latency: backbone, batch 1, eval mode, fp32,
median of ``--repeats`` after 2 warm-up runs, all threads of this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import ROOT, VARIANTS, WARMUP  # noqa: E402
from benchmarks.model_zoo import PUBLISHED  # noqa: E402
from mmeffformer.utils import keep_freed_memory, time_call  # noqa: E402
from mmeffformer.utils.model_analysis import (  # noqa: E402
    build_model,
    count_flops,
    count_params,
    model_call,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the tools do (docs/benchmarks.md: glibc's default is slower)
    height, width = args.shape
    print(
        f'Measured on {platform.machine()} with {os.cpu_count()} cores, '
        f'{torch.get_num_threads()} threads, torch {torch.__version__}, freed memory kept; '
        'command: '
        f'`python benchmarks/variants_table.py --shape {height} {width} --repeats {args.repeats}`.'
    )
    print()
    print(
        f'| variant | published box / mask AP | published mIoU | backbone params (M) '
        f'| backbone GMACs {height}x{width} | Mask R-CNN GMACs | Semantic FPN GMACs 512x512 '
        f'| backbone CPU latency {height}x{width} (ms, median [IQR]) |'
    )
    print('|---|---|---|---|---|---|---|---|')
    for variant in VARIANTS:
        det = str(ROOT / 'configs' / f'maskrcnn_effformer_{variant}_coco.py')
        seg = str(ROOT / 'configs' / f'semfpn_effformer_{variant}_ade20k.py')
        backbone, scope = build_model(det, 'backbone')
        call = model_call(backbone, scope, 'backbone', 1, height, width, 'cpu')
        backbone_macs = count_flops(call) / 2e9
        stats = time_call(call, warmup=WARMUP, repeats=args.repeats)
        detector, _ = build_model(det, 'model')
        det_macs = (
            count_flops(model_call(detector, 'mmdet', 'model', 1, height, width, 'cpu')) / 2e9
        )
        segmentor, _ = build_model(seg, 'model')
        seg_macs = count_flops(model_call(segmentor, 'mmseg', 'model', 1, 512, 512, 'cpu')) / 2e9
        published = PUBLISHED.get(variant, {})
        box, mask, miou = (published.get(k, '-') for k in ('box', 'mask', 'miou'))
        print(
            f'| {variant} | {box} / {mask} | {miou} | {count_params(backbone) / 1e6:.2f} '
            f'| {backbone_macs:.1f} | {det_macs:.1f} | {seg_macs:.1f} '
            f'| {stats["median"]:.0f} [{stats["q1"]:.0f}-{stats["q3"]:.0f}] |',
            flush=True,
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
