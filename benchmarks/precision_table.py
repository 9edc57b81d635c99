"""Precision / layout table: fp32, bf16, compiled bf16 and the runtimes, one run.

Usage: python benchmarks/precision_table.py [--out docs/precision.md] [--repeats 3]
           [--variants l1 l3 ...] [--sizes 512x512 800x1216] [--no-runtimes]
           [--no-compile]

For every backbone (and mmdet's ResNet-50) and size, these modes on the same
weights are timed in turns (batch 1, median of ``--repeats`` after 2 warm-ups):
fp32 NCHW eval (the default), fp32 channels-last eval, bf16 channels-last eval
(autocast), bf16 deploy (``switch_to_deploy(..., dtype=torch.bfloat16)``: float32
residual stream), the same with ``float32_residual=False`` (bf16 stream) and with
``compile=True``, ONNX Runtime (fp32) and OpenVINO (its default precision) on the
ONNX export of the fp32 deploy backbone. The 2048-matmul rates in fp32 and bf16 are
measured in the same run, before and after the table."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    ROOT,
    SIZES,
    VARIANTS,
    bf16_autocast,
    build_peer,
    matmul_rates,
    medians,
    recipe,
    runtimes_on_export,
)
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils import cpu_info, keep_freed_memory  # noqa: E402
from mmeffformer.utils.model_analysis import build_model, count_flops  # noqa: E402

MODES = (
    'fp32 NCHW',
    'fp32 channels-last',
    'bf16 channels-last',
    'bf16 deploy',
    'bf16 deploy, bf16 stream',
    'bf16 deploy compiled',
    'ONNX Runtime',
    'OpenVINO',
)
#: the PyTorch modes, of which the fastest makes the rate columns
TORCH_MODES = MODES[:-2]


def images(size: tuple, layout: torch.memory_format) -> torch.Tensor:
    return torch.rand(1, 3, *size).to(memory_format=layout)


def mode_calls(
    model: torch.nn.Module, size: tuple, runtimes: bool, compile: bool
) -> Dict[str, Callable]:
    """The modes on copies of one backbone."""
    nchw, channels_last = images(size, torch.contiguous_format), images(size, torch.channels_last)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)

    bf16_eval = bf16_autocast(lambda: cl_model(channels_last))
    calls = {
        'fp32 NCHW': lambda: model(nchw),
        'fp32 channels-last': lambda: cl_model(channels_last),
        'bf16 channels-last': bf16_eval,
        'bf16 deploy': bf16_eval,  # a peer without a deploy rewrite: its best bf16 form
    }
    if any(hasattr(m, 'set_compute_precision') for m in model.modules()):
        deployed = switch_to_deploy(copy.deepcopy(model), sizes=[size], dtype=torch.bfloat16)
        calls['bf16 deploy'] = lambda: deployed(nchw)
        rounded_stream = switch_to_deploy(
            copy.deepcopy(model), sizes=[size], dtype=torch.bfloat16, float32_residual=False
        )
        calls['bf16 deploy, bf16 stream'] = lambda: rounded_stream(nchw)
        if compile:
            compiled = switch_to_deploy(
                copy.deepcopy(model), sizes=[size], dtype=torch.bfloat16, compile=True
            )
            calls['bf16 deploy compiled'] = lambda: compiled(nchw)
    if runtimes:
        fp32_deploy = switch_to_deploy(copy.deepcopy(model), sizes=[size])
        runtimes = runtimes_on_export(fp32_deploy, size)  # both on the same file
        calls['ONNX Runtime'] = lambda: runtimes['onnxruntime'](nchw.numpy())
        calls['OpenVINO'] = lambda: runtimes['openvino'](nchw.numpy())
    return calls


def measure(
    names: List[str], sizes: List[str], repeats: int, runtimes: bool, compile: bool
) -> List[dict]:
    rows = []
    for name in names:
        for size_name in sizes:
            size = SIZES[size_name]
            if name == 'ResNet-50':
                model = build_peer(50)
            else:
                model, _ = build_model(recipe(name, size), 'backbone')
            flops = count_flops(lambda m=model, s=size: m(images(s, torch.contiguous_format)))
            with torch.no_grad():
                times = medians(mode_calls(model, size, runtimes, compile), repeats)
            rows.append(dict(model=name, size=size_name, gflop=flops / 1e9, ms=times))
            print(name, size_name, {k: round(v, 1) for k, v in times.items()}, flush=True)
    return rows


def report(results: dict) -> str:
    cpu, rates, after = results['cpu'], results['matmul'], results['matmul_after']
    lines = [
        '# Precision and layout (CPU)',
        '',
        f'One run of `{results["command"]}`: {cpu["model"]}, bf16 flags '
        f'{", ".join(cpu["bf16_flags"]) or "none"}, {results["threads"]} threads, torch '
        f'{torch.__version__}, batch 1, median of {results["repeats"]} calls after 2 warm-ups, '
        'the modes of a row timed in turns, freed memory kept.',
        '',
        f'2048-matmul rates of the same run: fp32 {rates["fp32"]:.0f} GFLOP/s, bf16 '
        f'{rates["bf16"]:.0f} GFLOP/s (before the table); fp32 {after["fp32"]:.0f}, bf16 '
        f'{after["bf16"]:.0f} (after).',
        '',
        '| backbone | size | GFLOP | '
        + ' | '.join(f'{m} (ms)' for m in MODES)
        + ' | CL / NCHW | fastest PyTorch vs fp32 NCHW | its GFLOP/s (% of bf16 matmul) '
        '| fastest PyTorch / OpenVINO time |',
        '|---|---|---|' + '---|' * (len(MODES) + 4),
    ]
    for row in results['rows']:
        ms = row['ms']
        fastest = min(ms[m] for m in TORCH_MODES if m in ms)
        rate = row['gflop'] / fastest * 1000
        cells = ' | '.join(f'{ms[m]:.1f}' if m in ms else '-' for m in MODES)
        versus_openvino = f'{fastest / ms["OpenVINO"]:.2f}x' if 'OpenVINO' in ms else '-'
        lines.append(
            f'| {row["model"]} | {row["size"]} | {row["gflop"]:.1f} | {cells} | '
            f'{ms["fp32 NCHW"] / ms["fp32 channels-last"]:.2f}x | '
            f'{ms["fp32 NCHW"] / fastest:.2f}x | '
            f'{rate:.0f} ({100 * rate / rates["bf16"]:.0f}%) | {versus_openvino} |'
        )
    lines += [
        '',
        'bf16 deploy: `switch_to_deploy(..., dtype=torch.bfloat16)`, float32 residual stream; '
        'bf16 stream: the same with `float32_residual=False` (see deploy.md); compiled: '
        'the same with `compile=True` (see compiled_backbones.md). ONNX Runtime (fp32) and '
        'OpenVINO (its default precision: bf16 where the CPU has native bf16) run the ONNX '
        'export of the fp32 deploy backbone.',
        '',
        'ResNet-50 has no deploy rewrite: its "bf16 deploy" column repeats its bf16 channels-last'
        ' (autocast) time, its best bf16 form.',
        '',
    ]
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=str(ROOT / 'docs' / 'precision.md'))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS) + ['ResNet-50'])
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        '--no-runtimes', action='store_true', help='leave out ONNX Runtime and OpenVINO'
    )
    parser.add_argument(
        '--no-compile', action='store_true', help='leave out the compiled bf16 deploy'
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    results = dict(
        command='python benchmarks/precision_table.py ' + ' '.join(argv or sys.argv[1:]),
        cpu=cpu_info(),
        threads=args.threads,
        repeats=args.repeats,
        matmul=matmul_rates(args.repeats, emulated_bf16=True),
    )
    results['rows'] = measure(
        args.variants, args.sizes, args.repeats, not args.no_runtimes, not args.no_compile
    )
    results['matmul_after'] = matmul_rates(args.repeats, emulated_bf16=True)
    out = Path(args.out)
    out.write_text(report(results))
    out.with_suffix('.json').write_text(json.dumps(results, indent=1))
    print(report(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
