"""What a CPU training step of the demo's Mask R-CNN costs, and what each speed lever buys.

Usage: python benchmarks/train_step.py [--checkpoint demo_out/maskrcnn/iter_N.pth]
           [--steps 6] [--out docs/train_step.md]

Each row is a fresh process (denormal flushing lasts for a process) that builds the
demo detector (configs/demo, EfficientFormer-l1, 4 images of 160x160), loads
``--checkpoint`` if given (a trained detector has the positives a late training step
has; a fresh one has almost none, so its mask head is nearly idle), and times
``train_step`` (forward, backward, optimizer) on the same training batches: median of
``--steps`` after 2 warm-ups. Rows add one lever at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'configs' / 'demo' / 'maskrcnn_effformer_l1_synthetic.py'

#: (row name, settings), each row adding a lever to the one above it.
ROWS = (
    ('before: per-tensor AdamW, denormals kept, 512 RoIs, every positive', {}),
    ('+ denormals flushed', dict(flush=True)),
    ('+ fused AdamW', dict(flush=True, fused=True)),
    ('+ mask head: 8 positives per image', dict(flush=True, fused=True, mask=8)),
    ('+ bf16 autocast', dict(flush=True, fused=True, mask=8, bf16=True)),
    (
        '+ RoIAlign as matmuls (MatmulRoIExtractor)',
        dict(flush=True, fused=True, mask=8, bf16=True, matmul=True),
    ),
)


def time_steps(settings: dict, checkpoint: str, steps: int, data: str) -> dict:
    """Runs in the child process: median seconds of a training step under ``settings``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from mmeffformer.utils import flush_denormals, keep_freed_memory

    if settings.get('flush'):
        flush_denormals()
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint

    import mmeffformer  # noqa: F401
    from mmeffformer.engine import amp_optim_wrapper
    from tests.helpers.downstream import build_from_config

    keep_freed_memory()
    cfg = Config.fromfile(str(CONFIG))
    cfg.train_dataloader.dataset.data_root = f'{data}/coco/'
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.model.train_cfg.rcnn.sampler.num = 128
    cfg.optim_wrapper.optimizer.fused = bool(settings.get('fused'))
    if settings.get('mask'):
        cfg.model.roi_head.mask_positives_per_image = settings['mask']
    else:
        cfg.model.roi_head.type = 'StandardRoIHead'
        cfg.model.roi_head.pop('mask_positives_per_image', None)
    if not settings.get('matmul'):  # mmdet's extractor, mmcv's compiled RoIAlign
        for extractor in ('bbox_roi_extractor', 'mask_roi_extractor'):
            cfg.model.roi_head[extractor].type = 'SingleRoIExtractor'
    if settings.get('bf16'):
        cfg.optim_wrapper = amp_optim_wrapper(cfg.optim_wrapper, 'cpu', 'bfloat16')
    model = build_from_config(cfg, 'mmdet')
    if checkpoint:
        load_checkpoint(model, checkpoint, logger='silent')
    from mmengine.optim import build_optim_wrapper

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batches = iter(Runner.build_dataloader(cfg.train_dataloader, seed=0))
    torch.manual_seed(0)
    seconds = []
    for index in range(steps + 2):
        batch = next(batches)
        start = time.perf_counter()
        model.train_step(batch, optim_wrapper)
        if index >= 2:
            seconds.append(time.perf_counter() - start)
    return dict(median=statistics.median(seconds), all=seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='', help='a trained demo detector')
    parser.add_argument('--data', default='data/synthetic')
    parser.add_argument('--steps', type=int, default=6)
    parser.add_argument('--out', default='docs/train_step.md')
    parser.add_argument('--row', type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.row is not None:
        settings = ROWS[args.row][1]
        print(json.dumps(time_steps(settings, args.checkpoint, args.steps, args.data)))
        return 0

    sys.path.insert(0, str(ROOT))
    from mmeffformer.utils.cpu_facts import cpu_info

    info = cpu_info()
    rows = []
    for index, (name, _) in enumerate(ROWS):
        child = subprocess.run(
            [sys.executable, __file__, '--row', str(index), '--steps', str(args.steps),
             '--checkpoint', args.checkpoint, '--data', args.data],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append((name, result['median']))
        print(f'{name}: {result["median"]:.2f} s', flush=True)
    lines = [
        '# Demo Mask R-CNN: one CPU training step',
        '',
        f'`python benchmarks/train_step.py --checkpoint {args.checkpoint or "(none)"}` on '
        f'{info["model"]} ({", ".join(info["bf16_flags"]) or "no bf16 flags"}), '
        f'{__import__("torch").get_num_threads()} threads, one run. EfficientFormer-l1 Mask '
        'R-CNN, 4 images of 160x160, box sampler 128 RoIs per image; median of '
        f'{args.steps} steps after 2 warm-ups. Each row adds one lever to the row above.',
        '',
        '| setting | seconds per step | vs first row |',
        '|---|---|---|',
        *[f'| {name} | {seconds:.2f} | {rows[0][1] / seconds:.2f}x |' for name, seconds in rows],
    ]
    Path(args.out).write_text('\n'.join(lines) + '\n')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
