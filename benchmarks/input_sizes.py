"""Backbone latency from 256 to 1024 px (square inputs), eval and deploy, with a plot.

Usage: python benchmarks/input_sizes.py [--repeats 5] [--quick] [--plot docs/latency_vs_size.png]
(prints its part of docs/benchmarks.md; ``benchmarks/run_benchmarks.py`` runs every part).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, eval_and_deploy_calls, medians, recipe  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402

MODELS = ('l1', 'v2-s0')
SIDES = (256, 384, 512, 640, 768, 896, 1024)
QUICK_SIDES = (256, 512)


def size_rows(variants, sides, repeats: int) -> List[dict]:
    rows = []
    for name in variants:
        for side in sides:
            model, scope = build_model(recipe(name, (512, 512)), 'backbone')
            calls = eval_and_deploy_calls(model, scope, 'backbone', (side, side))
            row = dict(model=name, side=side, **medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def measure(repeats: int, quick: bool) -> dict:
    return dict(sizes=size_rows(MODELS, QUICK_SIDES if quick else SIDES, repeats))


def write_plot(rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r['model'] for r in rows):
        for mode, style in (('eval', '-o'), ('deploy', '--s')):
            points = [(r['side'], r[mode]) for r in rows if r['model'] == name]
            axis.plot(*zip(*points), style, label=f'{name} {mode}')
    axis.set_xlabel('input side (px, square)')
    axis.set_ylabel('backbone latency (ms, batch 1)')
    axis.set_title('Latency vs input size (CPU, fp32)')
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def render(results: dict) -> List[str]:
    lines = [
        '## Latency vs input size (backbone, square inputs, ms)',
        '',
        '![latency vs size](latency_vs_size.png)',
        '',
        '| backbone | side | eval | deploy |',
        '|---|---|---|---|',
    ]
    for row in results['sizes']:
        lines.append(
            f'| {row["model"]} | {row["side"]} | {row["eval"]:.1f} | {row["deploy"]:.1f} |'
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--quick', action='store_true', help='two sizes only')
    parser.add_argument('--plot', default=str(ROOT / 'docs' / 'latency_vs_size.png'))
    args = parser.parse_args(argv)
    results = measure(args.repeats, args.quick)
    write_plot(results['sizes'], Path(args.plot))
    print('\n'.join(render(results)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
