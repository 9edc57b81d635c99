"""How long does a whole detector or segmentor take per image, in PyTorch and in the runtimes?

The recipes' Mask R-CNN (800x1216) and Semantic FPN (512x512) of each variant, batch 1,
random weights, the columns of a row on the same weights and timed in turns: PyTorch
``predict`` in fp32 eval and deploy mode and, where the CPU has native bf16, bf16 deploy
eager and with compiled backbone and neck (under autocast for the heads); ONNX Runtime and
OpenVINO (its default precision) on the deploy-mode file ``tools/export_onnx.py --part model
--deploy`` writes. ``--int8``: OpenVINO on the INT8 IR of ``tools/quantize.py`` beside
OpenVINO fp32, and PyTorch with the PT2E INT8 backbone and neck of ``tools/quantize.py
--backend pytorch`` (compiled) beside compiled fp32. ``--executorch``: the runtimes only,
ONNX Runtime and OpenVINO beside the ExecuTorch (XNNPACK) programs of
``tools/export_executorch.py --part model`` in fp32 and INT8, with the files' sizes (its own
section: the page on mobile runtimes quotes it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Callable, List

import torch

from benchmarks.common import (
    TASK_NAMES,
    TASK_SIZES,
    TASKS,
    VARIANTS,
    bf16_autocast,
    calibration_images,
    deployed,
    executorch_programs,
    fmt,
    medians,
    pivot,
    recipe,
    runtimes_on_file,
    section_header,
    size_name,
    table,
)
from mmeffformer.utils import cpu_has_native_bf16
from mmeffformer.utils.model_analysis import build_model, model_call

NAME = 'whole_model_latency'
TITLE = 'Whole-model latency'
QUICK = dict(variants=['l1'], tasks=['segmentation'], repeats=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', nargs='+', default=['l1', 'l3', 'v2-s0'], choices=VARIANTS)
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        '--int8',
        action='store_true',
        help='also INT8: OpenVINO on the INT8 IR, PyTorch with the PT2E INT8 backbone and neck '
        '(needs the quantize extra)',
    )
    parser.add_argument(
        '--executorch',
        action='store_true',
        help='the runtimes only, with ExecuTorch fp32 and INT8 (needs the mobile extra)',
    )


def section_key(args: argparse.Namespace) -> str:
    """The results section a run fills: ``--executorch`` runs have their own."""
    return f'{NAME}:executorch' if args.executorch else NAME


def calls_for(variant: str, task: str, folder: str, args, files: dict) -> dict:
    """The timed calls of one model; ``files``: the MB of each file written, by column."""
    from mmengine.config import Config

    from mmeffformer.export import export_onnx, exportable

    size = TASK_SIZES[task]
    model, scope = build_model(recipe(variant, task), 'model')
    calls = {}
    fast = deployed(model, size)
    if not args.executorch:
        calls['eval fp32'] = model_call(model, scope, 'model', 1, *size, 'cpu')
        calls['deploy fp32'] = model_call(fast, scope, 'model', 1, *size, 'cpu')
    if cpu_has_native_bf16() and not args.executorch:  # emulated bf16 is many times slower
        for name, compile in (('deploy bf16', False), ('compiled bf16', True)):
            low = deployed(model, size, dtype=torch.bfloat16, compile=compile)
            calls[name] = bf16_autocast(model_call(low, scope, 'model', 1, *size, 'cpu'))
    path = os.path.join(folder, f'{variant}_{task}.onnx')
    export_onnx(exportable(fast, scope, 'model'), path, size)
    image = torch.rand(1, 3, *size).numpy()
    for runtime in runtimes_on_file(path, ('onnxruntime', 'openvino')).values():
        precision = runtime.describe().rstrip(')').split(', ')[-1]
        calls[f'{runtime.name} {precision}'] = lambda runtime=runtime: runtime(image)
        files[f'{runtime.name} {precision}'] = os.path.getsize(path) / 1e6
    if args.executorch:
        cfg = Config.fromfile(recipe(variant, task))
        module = exportable(fast, scope, 'model').eval()
        programs, megabytes = executorch_programs(module, size, folder, f'{variant}_{task}', cfg)
        files.update(megabytes)
        for column, runtime in programs.items():
            calls[column] = lambda runtime=runtime: runtime(image)
    if args.int8:  # against OpenVINO in fp32 as well: the speed-up INT8 is taken for
        fp32 = runtimes_on_file(path, ['openvino'], 'fp32')['openvino']
        calls.setdefault('openvino fp32', lambda: fp32(image))
        calls['openvino int8'] = openvino_int8_call(path, size, image)
        compiled = deployed(model, size, compile=True)
        calls['compiled fp32'] = model_call(compiled, scope, 'model', 1, *size, 'cpu')
        calls['pytorch int8'] = pytorch_int8_call(fast, scope, size, path)
    return calls


def openvino_int8_call(path: str, size, image) -> Callable[[], object]:
    """OpenVINO on the INT8 IR of ``path`` (tools/quantize.py's quantization)."""
    from mmeffformer.quantization import quantize_openvino
    from mmeffformer.runtimes import build_backend

    xml = path.replace('.onnx', '_int8.xml')
    quantize_openvino(path, [i.numpy() for i in calibration_images(size)], xml)
    runtime = build_backend('openvino', xml, threads=torch.get_num_threads())
    return lambda: runtime(image)


def pytorch_int8_call(fast: torch.nn.Module, scope: str, size, path: str):
    """``predict`` of the deploy-mode ``fast`` with its backbone and neck replaced by their
    PT2E INT8 program (tools/quantize.py --backend pytorch's quantization), compiled."""
    import copy

    from mmeffformer.export import describe, exportable
    from mmeffformer.quantization import quantize_pytorch, use_quantized_features

    program = path.replace('.onnx', '_int8.pt2')
    description = describe(exportable(fast, scope, 'model'))
    quantize_pytorch(fast, calibration_images(size), program, description)
    quantized = copy.deepcopy(fast)
    use_quantized_features(quantized, program)
    return model_call(quantized, scope, 'model', 1, *size, 'cpu')


def measure(args: argparse.Namespace) -> dict:
    from mmeffformer.utils import keep_freed_memory

    keep_freed_memory()  # as the tools do
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for task in args.tasks:
            for variant in args.variants:
                files = {}
                times = medians(calls_for(variant, task, folder, args, files), args.repeats)
                model = f'{TASK_NAMES[task]} {variant}'
                for column, ms in times.items():
                    size = size_name(TASK_SIZES[task])
                    record = dict(model=model, size=size, column=column, ms=ms)
                    if column in files:
                        record['file_mb'] = files[column]
                    records.append(record)
                print(model, {k: round(v) for k, v in times.items()}, flush=True)
    method = (
        f'Median ms per image of {args.repeats} calls after 2 warm-up calls, batch 1, random '
        "weights. PyTorch columns run `predict` with the framework's post-processing; the "
        'runtime columns run the exported graph (detectors: RPN, NMS and RoIAlign in the graph; '
        'segmentors: the logits at the input size). compiled: backbone and neck compiled. bf16 '
        "columns only where the CPU has native bf16. A random Mask R-CNN keeps the RPN's 1000 "
        'proposals but few final detections. `--int8`: openvino int8 is the INT8 IR of '
        '`tools/quantize.py`, pytorch int8 the PT2E INT8 backbone and neck of '
        '`tools/quantize.py --backend pytorch` compiled by Inductor (heads fp32), both '
        'calibrated on two random images; compiled fp32 is its float counterpart.'
    )
    if args.executorch:
        method = (
            f'Median ms per image of {args.repeats} calls after 2 warm-up calls, batch 1, random '
            'weights, every column on the same weights and timed in turns. onnxruntime and '
            'openvino (its default precision) run the deploy-mode file of `tools/export_onnx.py '
            '--part model`; executorch runs the programs of `tools/export_executorch.py --part '
            "model` (XNNPACK, bound = the input size) in ExecuTorch's Python runtime, fp32 and "
            'INT8 (XNNPACK quantizer, calibrated on two random images). A segmentor program ends '
            'at the decode head and the runtime resizes its logits to the input in PyTorch; a '
            'detector program runs its networks in ExecuTorch and its anchors, NMS and RoIAlign '
            'in PyTorch. MB: the '
            'file.'
        )
    return dict(method=method, repeats=args.repeats, records=records)


def render(section: dict, machine: dict) -> List[str]:
    if any(r['column'].startswith('executorch') for r in section['records']):
        return render_runtimes(section)
    rows, columns, cells = pivot(section['records'], ('model', 'size'), 'column')
    int8 = 'openvino int8' in columns
    body = []
    for row in rows:
        ms = cells[row]
        best = min(ms.values())
        pytorch = min(v for k, v in ms.items() if k.split()[0] in ('eval', 'deploy', 'compiled'))
        openvino = next((v for k, v in ms.items() if k.startswith('openvino')), None)
        line = [*row, *[fmt(ms.get(c), 0) for c in columns]]
        line += [f'{ms["eval fp32"] / best:.2f}x', fmt(pytorch / openvino if openvino else None, 2)]
        if int8:  # the speed-up INT8 is taken for, each against its own float counterpart
            line += [_ratio(ms, 'openvino fp32', 'openvino int8')]
            line += [_ratio(ms, 'compiled fp32', 'pytorch int8')]
        body.append(line)
    header = ['model', 'input', *[f'{c} (ms)' for c in columns]]
    header += ['fastest vs eval fp32', 'fastest PyTorch / OpenVINO']
    if int8:
        header += ['OpenVINO int8 vs fp32', 'PyTorch int8 vs compiled fp32']
    return [*section_header(section), *table(header, body), '']


def _ratio(ms: dict, slow: str, fast: str) -> str:
    return f'{ms[slow] / ms[fast]:.2f}x' if slow in ms and fast in ms else '-'


def render_runtimes(section: dict) -> List[str]:
    """A runtimes-only section: ms per runtime, and each file's MB."""
    rows, columns, cells = pivot(section['records'], ('model', 'size'), 'column')
    sizes = {(r['model'], r['size'], r['column']): r.get('file_mb') for r in section['records']}
    body = []
    for row in rows:
        line = [*row, *[fmt(cells[row].get(c), 0) for c in columns]]
        line += [fmt(sizes.get((*row, c)), 1) for c in columns]
        best_float = min(v for k, v in cells[row].items() if not k.endswith('int8'))
        line.append(_ratio({'float': best_float, **cells[row]}, 'float', 'executorch int8'))
        body.append(line)
    header = ['model', 'input', *[f'{c} (ms)' for c in columns]]
    header += [f'{c} (MB)' for c in columns] + ['fastest float / ExecuTorch int8']
    return [*section_header(section), *table(header, body), '']
