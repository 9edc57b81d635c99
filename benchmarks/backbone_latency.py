"""How fast is each backbone, in each mode and precision, at each size, in PyTorch and in
the runtimes?

Every variant (and mmdet's ResNets, the backbones the recipes replace) at each size, batch
1, the modes of one backbone on the same random weights and timed in turns: PyTorch eval,
deploy (``switch_to_deploy``) and compiled deploy (``compile=True``; ResNets: the eval
model compiled the same way) in fp32 and, where the CPU has native bf16, in bf16 (eval:
autocast, channels-last; deploy: ``dtype=torch.bfloat16``); ONNX Runtime (fp32) and OpenVINO
(fp32 and, with native bf16, its default bf16) on one ONNX export of the fp32 deploy model.
``--modes ... executorch`` adds the ExecuTorch (XNNPACK) programs of
``tools/export_executorch.py`` in fp32 and INT8, with the files' sizes (its own section).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import torch

from benchmarks.common import (
    PEERS,
    ROOT,
    VARIANTS,
    bf16_autocast,
    build_backbone,
    deployed,
    executorch_programs,
    fmt,
    has_deploy_mode,
    load_results,
    medians,
    parse_size,
    pivot,
    runtimes_on_export,
    section_header,
    size_name,
    table,
)
from mmeffformer.utils import cpu_has_native_bf16
from mmeffformer.utils.model_analysis import count_flops

NAME = 'backbone_latency'
TITLE = 'Backbone latency'
QUICK = dict(variants=['l1', 'v2-s0'], peers=['ResNet-50'], sizes=['512x512'], repeats=2)
PYTORCH_MODES = ('eval', 'deploy', 'compiled')
RUNTIMES = ('onnxruntime', 'openvino')
#: modes a run asks for by name (not in the default list): lowering to XNNPACK takes minutes
EXTRA_MODES = ('executorch',)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--peers', nargs='*', default=['ResNet-50'], choices=list(PEERS))
    parser.add_argument('--sizes', nargs='+', default=['800x1216'], help='HxW, e.g. 512x512')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=list(PYTORCH_MODES + RUNTIMES),
        choices=PYTORCH_MODES + RUNTIMES + EXTRA_MODES,
    )
    parser.add_argument(
        '--default-allocator',
        action='store_true',
        help="glibc's default of returning freed memory (the tools keep it; see benchmarks.md)",
    )


def section_key(args: argparse.Namespace) -> str:
    """The results section a run fills: runs with ExecuTorch have their own."""
    return f'{NAME}:executorch' if 'executorch' in args.modes else NAME


def mode_calls(
    model: torch.nn.Module, size, modes: List[str], bf16: bool, folder: str, files: dict
) -> Dict[tuple, Callable[[], object]]:
    """``{(mode, precision): call}`` on copies of one backbone; ``files``: the MB of each
    ExecuTorch program written into ``folder``."""
    image = torch.rand(1, 3, *size)
    image_cl = image.contiguous(memory_format=torch.channels_last)
    rewritable = has_deploy_mode(model)
    calls: Dict[tuple, Callable[[], object]] = {}
    if 'eval' in modes:
        calls['eval', 'fp32'] = lambda: model(image)
        if bf16:
            model_cl = _channels_last_copy(model)
            calls['eval', 'bf16'] = bf16_autocast(lambda: model_cl(image_cl))
    for precision in ('fp32', 'bf16') if bf16 else ('fp32',):
        dtype = torch.bfloat16 if precision == 'bf16' else None
        if 'deploy' in modes and rewritable:
            fast = deployed(model, size, dtype=dtype)
            calls['deploy', precision] = lambda fast=fast: fast(image)
        if 'compiled' in modes:
            compiled = _compiled(model, size, dtype, rewritable)
            if precision == 'bf16' and not rewritable:
                calls['compiled', precision] = bf16_autocast(lambda c=compiled: c(image_cl))
            else:
                calls['compiled', precision] = lambda c=compiled: c(image)
    names = [name for name in RUNTIMES if name in modes]
    if names:
        exported = deployed(model, size) if rewritable else model
        runtimes = runtimes_on_export(exported, size, names, openvino_precision='fp32')
        if 'openvino' in names and bf16:
            runtimes['openvino bf16'] = runtimes_on_export(exported, size, ['openvino'])['openvino']
        array = image.numpy()
        for key, runtime in runtimes.items():
            precision = 'bf16' if key.endswith('bf16') else 'fp32'
            calls[key.split()[0], precision] = lambda r=runtime: r(array)
    if 'executorch' in modes:
        exported = deployed(model, size) if rewritable else model
        programs, megabytes = executorch_programs(exported.eval(), size, folder, 'backbone')
        array = image.numpy()
        for key, runtime in programs.items():
            calls[tuple(key.split())] = lambda r=runtime: r(array)
            files[tuple(key.split())] = megabytes[key]
    return calls


def _channels_last_copy(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def _compiled(model: torch.nn.Module, size, dtype, rewritable: bool) -> torch.nn.Module:
    """The compiled deploy model; a ResNet: its eval model (channels-last for bf16), frozen."""
    if rewritable:
        return deployed(model, size, dtype=dtype, compile=True)
    from mmeffformer.models.deploy_mode import compile_frozen

    frozen = copy.deepcopy(model)
    if dtype is not None:  # run under autocast on channels-last inputs, as bf16 eval
        frozen = frozen.to(memory_format=torch.channels_last)
    compile_frozen(frozen)  # compiles on its first (warm-up) call
    return frozen


def default_allocator_records(variant: str, size: str, repeats: int) -> List[dict]:
    """Eval of one backbone with glibc's default allocator, in a process of its own (keeping
    freed memory is process-wide)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, '-m', 'benchmarks', NAME, '--variants', variant, '--peers']
        command += ['--sizes', size, '--modes', 'eval', '--repeats', str(repeats)]
        command += ['--default-allocator', '--no-render', '--results', folder]
        subprocess.run(command, check=True, cwd=ROOT)
        (results,) = load_results(Path(folder))
    return [r for r in results['benchmarks'][NAME]['records'] if r['precision'] == 'fp32']


def measure(args: argparse.Namespace) -> dict:
    if not args.default_allocator:
        from mmeffformer.utils import keep_freed_memory

        keep_freed_memory()  # as the tools do
    bf16 = cpu_has_native_bf16()
    records = []
    for name in list(args.variants) + list(args.peers):
        for text in args.sizes:
            size = parse_size(text)
            model, _ = build_backbone(name, size)
            image = torch.rand(1, 3, *size)
            gflops = count_flops(lambda m=model, x=image: m(x)) / 1e9
            files = {}
            with tempfile.TemporaryDirectory() as folder:
                calls = mode_calls(model, size, args.modes, bf16, folder, files)
                times = medians(calls, args.repeats)
            for (mode, precision), ms in times.items():
                record = dict(
                    model=name,
                    size=size_name(size),
                    gflops=gflops,
                    mode=mode,
                    precision=precision,
                    allocator='default' if args.default_allocator else 'kept',
                    ms=ms,
                )
                if (mode, precision) in files:
                    record['file_mb'] = files[mode, precision]
                records.append(record)
            print(name, text, {f'{k[0]} {k[1]}': round(v, 1) for k, v in times.items()})
    if 'eval' in args.modes and not (args.default_allocator or args.quick):
        records += default_allocator_records(args.variants[0], args.sizes[0], args.repeats)
    method = (
        f'Batch 1, random weights, median of {args.repeats} calls after 2 warm-up calls, '
        'the columns of a row timed in turns. eval / deploy / compiled: PyTorch '
        '(`switch_to_deploy`, `compile=True`; a ResNet has no deploy rewrite and its compiled '
        'column is its eval model compiled the same way); bf16 eval runs autocast on '
        'channels-last inputs, bf16 deploy `dtype=torch.bfloat16`. onnxruntime / openvino: one '
        'ONNX export of the fp32 deploy model. bf16 columns only where the CPU has native bf16.'
    )
    if 'executorch' in args.modes:
        method += (
            " executorch: the programs of `tools/export_executorch.py` in ExecuTorch's Python "
            'runtime (XNNPACK, bound = the input size), fp32 and INT8 (XNNPACK quantizer, '
            'calibrated on two random images); MB: the program file.'
        )
    return dict(method=method, repeats=args.repeats, records=records)


def render(section: dict, machine: dict) -> List[str]:
    lines = section_header(section)
    records = section['records']
    kept = [r for r in records if r.get('allocator', 'kept') == 'kept']
    for size in dict.fromkeys(r['size'] for r in kept):
        at_size = [
            dict(r, column=f'{r["mode"]} {r["precision"]}') for r in kept if r['size'] == size
        ]
        rows, columns, cells = pivot(at_size, ('model',), 'column')
        gflops = {r['model']: r['gflops'] for r in at_size}
        header = ['backbone', 'GFLOPs', *[f'{c} (ms)' for c in columns]]
        header += ['fastest PyTorch / fastest runtime time', 'fastest PyTorch GFLOP/s']
        megabytes = {(r['model'], r['column']): r['file_mb'] for r in at_size if 'file_mb' in r}
        sized = list(dict.fromkeys(column for _, column in megabytes))
        header += [f'{c} file (MB)' for c in sized]
        body = []
        for (model,) in rows:
            ms = cells[(model,)]
            torch_ms = [v for k, v in ms.items() if k.split()[0] in PYTORCH_MODES]
            fastest = min(torch_ms) if torch_ms else None
            runtime_ms = [v for k, v in ms.items() if k.split()[0] in RUNTIMES]
            ratio = fastest / min(runtime_ms) if fastest and runtime_ms else None
            rate = gflops[model] / fastest * 1000 if fastest else None
            body.append(
                [model, f'{gflops[model]:.1f}', *[fmt(ms.get(c)) for c in columns]]
                + [fmt(ratio, 2), fmt(rate, 0)]
                + [fmt(megabytes.get((model, c)), 1) for c in sized]
            )
        lines += [f'### {size}', '', *table(header, body), '']
    default = [r for r in records if r.get('allocator') == 'default']
    for record in default:
        same = next(
            (
                r
                for r in kept
                if (r['model'], r['size'], r['mode'], r['precision'])
                == (record['model'], record['size'], record['mode'], record['precision'])
            ),
            None,
        )
        lines.append(
            f"With glibc's default allocator settings (a process of its own): {record['model']} "
            f'{record["mode"]} {record["precision"]} at {record["size"]}: {record["ms"]:.1f} ms'
            + (f' against {same["ms"]:.1f} ms with freed memory kept.' if same else '.')
        )
    if default:
        lines.append('')
    return lines
