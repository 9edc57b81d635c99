"""l1 backbone eval latency at 512x512 with glibc's default allocator settings.

Usage: python benchmarks/allocator.py [--repeats 5] [--keep-freed-memory]
Run in a process of its own: keeping freed memory (what the tools do) is process-wide.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import WARMUP, recipe  # noqa: E402
from mmeffformer.utils import keep_freed_memory, time_call  # noqa: E402
from mmeffformer.utils.model_analysis import build_model, model_call  # noqa: E402


def l1_eval_ms(repeats: int) -> dict:
    model, scope = build_model(recipe('l1', (512, 512)), 'backbone')
    call = model_call(model, scope, 'backbone', 1, 512, 512, 'cpu')
    return dict(eval=time_call(call, WARMUP, repeats)['median'])


def render(results: dict) -> List[str]:
    kept = next(
        r['eval'] for r in results['backbones'] if (r['model'], r['size']) == ('l1', '512x512')
    )
    return [
        f"- Allocator: l1 eval at 512x512 with glibc's default settings (separate process): "
        f'{results["default_allocator"]["eval"]:.1f} ms vs {kept:.1f} ms with freed memory kept.'
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: all)')
    parser.add_argument('--keep-freed-memory', action='store_true')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error('glibc mallopt is not available: cannot keep freed memory')
    print(json.dumps(l1_eval_ms(args.repeats)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
