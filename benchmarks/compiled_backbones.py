"""Backbones in deploy mode, eager against compiled, beside OpenVINO on the same weights.

Usage: python benchmarks/compiled_backbones.py [--repeats 5] [--variants l1 l3 v2-s0]
           [--shape 800 1216]
Writes docs/compiled_backbones.json and docs/compiled_backbones.md (one run, one machine).

Each variant's detection-recipe backbone with random weights (trained-like BatchNorm
statistics and layer scales), batch 1, this machine's threads. Columns: fp32 eval;
deploy (bf16 where the CPU has native bf16, else fp32), eager and compiled
(``switch_to_deploy(..., compile=True)``: one graph, frozen weights); with native bf16
also the compiled bf16 deploy with ``float32_residual=False`` (the stream rounded to
bf16); OpenVINO in its default precision (bf16 where the CPU has native bf16) on the
ONNX export of the same deploy-mode backbone; and mmdet's ResNet-50 (fp32 eval, bf16
channels-last autocast). Also the compile time, the largest difference of each mode
from fp32 eval over the stride-4 map relative to its largest value, and the fastest
PyTorch mode against OpenVINO and ResNet-50. The 2048-matmul rates close the run.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    ROOT,
    bf16_autocast,
    build_peer,
    fmt,
    machine_description,
    matmul_rates,
    medians,
    openvino_on_export,
    output_errors,
    recipe,
    relative_error,
    trained_like,
)
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils import cpu_has_native_bf16, keep_freed_memory  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402

JSON = ROOT / 'docs' / 'compiled_backbones.json'
PAGE = ROOT / 'docs' / 'compiled_backbones.md'


def compiled_copy(backbone: torch.nn.Module, size: tuple, **deploy) -> tuple:
    """A compiled deploy copy of ``backbone`` and the seconds its compilation took."""
    start = time.perf_counter()
    compiled = switch_to_deploy(copy.deepcopy(backbone), sizes=[size], compile=True, **deploy)
    return compiled, time.perf_counter() - start


def measure_variant(variant: str, size: tuple, repeats: int) -> dict:
    torch.manual_seed(0)
    backbone, _ = build_model(recipe(variant, size), 'backbone')
    trained_like(backbone)
    native_bf16 = cpu_has_native_bf16()
    mode = 'bf16' if native_bf16 else 'fp32'
    deploy = dict(dtype=torch.bfloat16) if native_bf16 else {}
    image = torch.rand(1, 3, *size)
    models = {f'deploy {mode}': switch_to_deploy(copy.deepcopy(backbone), sizes=[size], **deploy)}
    models[f'deploy {mode} compiled'], compile_seconds = compiled_copy(backbone, size, **deploy)
    if native_bf16:  # the stream rounded to bf16: what float32_residual costs and saves
        models['deploy bf16, bf16 stream, compiled'], _ = compiled_copy(
            backbone, size, float32_residual=False, **deploy
        )
    openvino = openvino_on_export(switch_to_deploy(copy.deepcopy(backbone), sizes=[size]), size)
    with torch.no_grad():
        reference = backbone(image)
        errors = {name: relative_error(m(image)[0], reference[0]) for name, m in models.items()}
        errors[openvino.describe()] = output_errors(openvino(image.numpy()), reference)[0]
        calls = {'fp32 eval': lambda: backbone(image)}
        calls.update({name: lambda model=model: model(image) for name, model in models.items()})
        calls[openvino.describe()] = lambda: openvino(image.numpy())
        times = medians(calls, repeats)
    return dict(
        variant=variant,
        size=list(size),
        ms=times,
        errors=errors,
        compile_seconds=compile_seconds,
    )


def measure_peer(size: tuple, repeats: int) -> dict:
    """mmdet's ResNet-50 in fp32 eval and (with native bf16) bf16 channels-last autocast."""
    model = build_peer(50)
    image = torch.rand(1, 3, *size)
    calls = {'fp32 eval': lambda: model(image)}
    if cpu_has_native_bf16():
        channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
        image_cl = image.to(memory_format=torch.channels_last)
        calls['bf16 channels-last'] = bf16_autocast(lambda: channels_last(image_cl))
    with torch.no_grad():
        times = medians(calls, repeats)
    return dict(variant='ResNet-50', size=list(size), ms=times, errors={}, compile_seconds=None)


def render(results: dict) -> str:
    rates = results['matmul_gflops']
    lines = [
        '# Compiled backbones',
        '',
        f'Measured: {results["machine"]}; command: `{results["command"]}`. 2048-matmul rates '
        'of the same run: '
        + ', '.join(f'{name} {rate:.0f} GFLOP/s' for name, rate in rates.items())
        + '. Backbone of the detection recipe, random weights with trained-like BatchNorm '
        'statistics and layer scales, batch 1, one image of '
        f'{results["size"][0]}x{results["size"][1]}, median of {results["repeats"]} runs after '
        'the warm-up, the modes of a row timed in turns. OpenVINO runs the ONNX export of the '
        'same fp32 deploy-mode backbone in its default precision. Error: largest difference '
        'from fp32 eval on the stride-4 feature map, relative to its largest value. Compile: '
        '`switch_to_deploy(..., compile=True)` including the first (compiling) call.',
        '',
    ]
    modes = list(dict.fromkeys(m for row in results['rows'] for m in row['ms']))
    lines.append('| backbone | ' + ' | '.join(f'{m} (ms)' for m in modes) + ' | compile (s) |')
    lines.append('|---|' + '---|' * (len(modes) + 1))
    for row in results['rows']:
        cells = ' | '.join(fmt(row['ms'].get(m), 0) for m in modes)
        lines.append(f'| {row["variant"]} | {cells} | {fmt(row["compile_seconds"], 0)} |')
    backbones = [row for row in results['rows'] if row['errors']]
    error_modes = list(backbones[0]['errors'])
    lines += ['', '| backbone | ' + ' | '.join(f'{m} error' for m in error_modes) + ' |']
    lines.append('|---|' + '---|' * len(error_modes))
    for row in backbones:
        cells = ' | '.join(f'{row["errors"][m]:.1e}' for m in error_modes)
        lines.append(f'| {row["variant"]} | {cells} |')
    peer = next((row for row in results['rows'] if not row['errors']), None)
    lines += ['', "| backbone | time / OpenVINO's | ResNet-50 time / its time |", '|---|---|---|']
    for row in backbones:
        openvino = next(v for m, v in row['ms'].items() if m.startswith('openvino'))
        for mode, ms in row['ms'].items():
            if 'compiled' in mode:
                versus_peer = fmt(min(peer['ms'].values()) / ms, 2) + 'x' if peer else '—'
                lines.append(f'| {row["variant"]}, {mode} | {ms / openvino:.2f}x | {versus_peer} |')
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
    for variant in args.variants:
        rows.append(measure_variant(variant, size, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    rows.append(measure_peer(size, args.repeats))
    results = dict(
        machine=machine_description(),
        command='python benchmarks/compiled_backbones.py '
        f'--repeats {args.repeats} --variants {" ".join(args.variants)} '
        f'--shape {size[0]} {size[1]}',
        size=list(size),
        repeats=args.repeats,
        rows=rows,
        matmul_gflops=matmul_rates(args.repeats),
    )
    JSON.write_text(json.dumps(results, indent=1) + '\n')
    PAGE.write_text(render(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
