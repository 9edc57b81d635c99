"""Whole Mask R-CNN (800x1216) and Semantic FPN (512x512) inference per image, eval and deploy.

Usage: python benchmarks/whole_models.py [--repeats 5] [--variants l1 v2-s0]
(prints its part of docs/benchmarks.md; ``benchmarks/run_benchmarks.py`` runs every part).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import eval_and_deploy_calls, medians, recipe  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402

MODELS = ('l1', 'v2-s0')


def whole_model_rows(variants, repeats: int) -> List[dict]:
    rows = []
    for name in variants:
        for kind, size in (('Mask R-CNN', (800, 1216)), ('Semantic FPN', (512, 512))):
            model, scope = build_model(recipe(name, size), 'model')
            row = dict(model=f'{kind} {name}', size=f'{size[0]}x{size[1]}')
            calls = eval_and_deploy_calls(model, scope, 'model', size)
            row.update(medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def measure(repeats: int, variants=MODELS) -> dict:
    return dict(whole=whole_model_rows(variants, repeats))


def render(results: dict) -> List[str]:
    lines = [
        '',
        '## Whole-model inference per image (ms, random weights, predict mode)',
        '',
        '| model | input | eval | deploy |',
        '|---|---|---|---|',
    ]
    for row in results['whole']:
        lines.append(
            f'| {row["model"]} | {row["size"]} | {row["eval"]:.1f} | {row["deploy"]:.1f} |'
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--variants', nargs='+', default=list(MODELS))
    args = parser.parse_args(argv)
    print('\n'.join(render(measure(args.repeats, args.variants))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
