"""Backbones in deploy mode, eager against compiled, beside OpenVINO on the same weights.

Usage: python benchmarks/compiled_backbones.py [--repeats 5] [--variants l1 l3 v2-s0]
           [--shape 800 1216]
Writes docs/compiled_backbones.json and docs/compiled_backbones.md (one run, one machine).

Each variant's detection-recipe backbone with random weights, batch 1, this machine's
threads. Columns: fp32 eval; deploy (bf16 where the CPU has native bf16, else fp32),
eager and compiled (``switch_to_deploy(..., compile=True)``: one graph, frozen
weights); OpenVINO in its default precision (bf16 on AMX, else fp32) on the ONNX export
of the same deploy-mode backbone. Also the compile time and the largest difference of
each mode from fp32 eval over the largest feature map, relative to its largest value.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, machine_description, medians, recipe  # noqa: E402
from mmeffformer.deploy import build_backend, export_onnx  # noqa: E402
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils import cpu_has_native_bf16, keep_freed_memory  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402

JSON = ROOT / 'docs' / 'compiled_backbones.json'
PAGE = ROOT / 'docs' / 'compiled_backbones.md'


def relative_error(got, want) -> float:
    """Largest |got - want| over the largest (first) feature map, over its largest |want|."""
    got, want = got[0].float(), want[0].float()
    return ((got - want).abs().max() / want.abs().max()).item()


def measure_variant(variant: str, size: tuple, repeats: int, folder: str) -> dict:
    torch.manual_seed(0)
    backbone, _ = build_model(recipe(variant, size), 'backbone')
    for module in backbone.modules():  # trained-like BN statistics, not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    dtype = torch.bfloat16 if cpu_has_native_bf16() else None
    image = torch.rand(1, 3, *size)
    eager = switch_to_deploy(copy.deepcopy(backbone), sizes=[size], dtype=dtype)
    start = time.perf_counter()
    compiled = switch_to_deploy(copy.deepcopy(backbone), sizes=[size], dtype=dtype, compile=True)
    compile_seconds = time.perf_counter() - start
    path = os.path.join(folder, f'{variant}.onnx')
    export_onnx(switch_to_deploy(copy.deepcopy(backbone), sizes=[size]), path, size)
    openvino = build_backend('openvino', path, threads=torch.get_num_threads())
    mode = 'bf16' if dtype is not None else 'fp32'
    with torch.no_grad():
        reference = backbone(image)
        errors = {
            f'deploy {mode}': relative_error(eager(image), reference),
            f'deploy {mode} compiled': relative_error(compiled(image), reference),
            openvino.describe(): relative_error(
                [torch.from_numpy(o) for o in openvino(image.numpy())], reference
            ),
        }
        calls = {
            'fp32 eval': lambda: backbone(image),
            f'deploy {mode}': lambda: eager(image),
            f'deploy {mode} compiled': lambda: compiled(image),
            openvino.describe(): lambda: openvino(image.numpy()),
        }
        times = medians(calls, repeats)
    return dict(
        variant=variant,
        size=list(size),
        ms=times,
        errors=errors,
        compile_seconds=compile_seconds,
    )


def render(results: dict) -> str:
    lines = [
        '# Compiled backbones',
        '',
        f'Measured: {results["machine"]}; command: `{results["command"]}`. '
        'Backbone of the detection recipe, random weights with BN statistics away from the '
        'identity, batch 1, one image of '
        f'{results["size"][0]}x{results["size"][1]}, median of {results["repeats"]} runs after '
        'the warm-up, all modes timed in turns. OpenVINO runs the ONNX export of the same '
        'deploy-mode backbone. Error: largest difference from fp32 eval on the stride-4 '
        'feature map, relative to its largest value. Compile: `switch_to_deploy(..., '
        'compile=True)` including the first (compiling) call.',
        '',
    ]
    modes = list(results['rows'][0]['ms'])
    lines.append('| backbone | ' + ' | '.join(f'{m} (ms)' for m in modes) + ' | compile (s) |')
    lines.append('|---|' + '---|' * (len(modes) + 1))
    for row in results['rows']:
        cells = ' | '.join(f'{row["ms"][m]:.0f}' for m in modes)
        lines.append(f'| {row["variant"]} | {cells} | {row["compile_seconds"]:.0f} |')
    lines += ['', '| backbone | ' + ' | '.join(f'{m} error' for m in modes[1:]) + ' |']
    lines.append('|---|' + '---|' * (len(modes) - 1))
    for row in results['rows']:
        cells = ' | '.join(f'{row["errors"][m]:.1e}' for m in modes[1:])
        lines.append(f'| {row["variant"]} | {cells} |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--variants', nargs='+', default=['l1', 'l3', 'v2-s0'])
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    args = parser.parse_args(argv)
    keep_freed_memory()
    size = tuple(args.shape)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants:
            row = measure_variant(variant, size, args.repeats, folder)
            print(json.dumps(row), flush=True)
            rows.append(row)
    results = dict(
        machine=machine_description(),
        command='python benchmarks/compiled_backbones.py '
        f'--repeats {args.repeats} --variants {" ".join(args.variants)} '
        f'--shape {size[0]} {size[1]}',
        size=list(size),
        repeats=args.repeats,
        rows=rows,
    )
    JSON.write_text(json.dumps(results, indent=1) + '\n')
    PAGE.write_text(render(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
