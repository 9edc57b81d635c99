"""Latency / throughput of a config's backbone or whole model.

Usage: python tools/benchmark.py CONFIG [--part backbone|model] [--shape H W]
           [--batch N] [--threads T] [--dtype float32|bfloat16] [--device cpu|cuda]
           [--warmup W] [--repeats R] [--deploy] [--keep-freed-memory]

Prints the machine, threads, dtype and device, then the median latency with
its inter-quartile range, the minimum and the throughput (images / s).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.analysis import (  # noqa: E402
    build_model,
    keep_freed_memory,
    model_call,
    time_call,
)
from mmeffformer.models.deploy import switch_to_deploy  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--part', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument(
        '--deploy', action='store_true', help='time the deploy-mode model (switch_to_deploy)'
    )
    parser.add_argument(
        '--keep-freed-memory',
        action='store_true',
        help='let glibc keep freed feature maps for reuse (see analysis.keep_freed_memory)',
    )
    args = parser.parse_args(argv)
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error('--keep-freed-memory: glibc mallopt is not available here')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda asked for, but no CUDA device is available')
    torch.set_num_threads(args.threads)
    model, scope = build_model(args.config, args.part)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype))
    height, width = args.shape
    if args.deploy:
        switch_to_deploy(model, sizes=[(height, width)])
    call = model_call(model, scope, args.part, args.batch, height, width, args.device)
    if args.dtype != 'float32':
        inner = call

        def call():
            with torch.autocast(args.device, dtype=getattr(torch, args.dtype)):
                return inner()

    stats = time_call(call, args.warmup, args.repeats)
    print(
        f'{Path(args.config).name} {args.part} {height}x{width} batch {args.batch} | '
        f'{args.device} ({platform.processor() or platform.machine()}), {args.threads} threads, '
        f'{args.dtype}, torch {torch.__version__}, '
        f'{"deploy" if args.deploy else "eval"} mode'
        + (', glibc keeps freed memory' if args.keep_freed_memory else '')
    )
    print(
        f'median {stats["median"]:.1f} ms (IQR {stats["q1"]:.1f}-{stats["q3"]:.1f}), '
        f'min {stats["min"]:.1f} ms, {args.batch * 1000 / stats["median"]:.2f} img/s '
        f'({args.warmup} warm-up, {args.repeats} timed)'
    )
    return stats


if __name__ == '__main__':
    main()
