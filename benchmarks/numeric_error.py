"""How far are the reduced-precision forms from fp32, per output and block by block?

Weights: each variant's detection-recipe backbone, random, with trained-like BatchNorm
statistics and layer scales (``trained_like``). Reference: the fp32 deploy backbone.
Tested on the same weights: bf16 deploy with the float32 residual stream (the default) and
with ``float32_residual=False`` (the stream rounded to bf16 after every block), and OpenVINO
on the ONNX export of the fp32 deploy backbone in its default precision (bf16 where the CPU
has native bf16). Error: the largest absolute difference over the largest reference value.
Block by block (``--blocks``): *accumulated* is the bf16 model run whole, *own* the bf16
block given the fp32 block's input, what it adds by itself. ``--int8``: also the INT8
forms of ``tools/quantize.py`` on the same weights, calibrated on two other random images:
OpenVINO on the INT8 IR (NNCF) and the PT2E INT8 program compiled by Inductor. PyTorch's bf16
error does not depend on the CPU (emulated bf16 rounds the same way); nothing here is timed.
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

import torch
from torch import nn

from benchmarks.common import (
    VARIANTS,
    calibration_images,
    deployed,
    parse_size,
    recipe,
    relative_error,
    runtimes_on_export,
    section_header,
    size_name,
    table,
)
from mmeffformer.utils.model_analysis import build_model, trained_like

NAME = 'numeric_error'
TITLE = 'Numeric error against fp32'
QUICK = dict(variants=['l1'], size='256x384', blocks=[])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--variants', nargs='+', default=['l1', 'l3', 'v2-s0'], choices=VARIANTS)
    parser.add_argument('--size', default='800x1216', help='HxW')
    parser.add_argument(
        '--blocks', nargs='*', default=['l1'], help='variants whose blocks are measured one by one'
    )
    parser.add_argument(
        '--int8',
        action='store_true',
        help='also the INT8 forms in OpenVINO and PyTorch (needs the quantize extra)',
    )


def blocks_in_order(backbone: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The stem, then per stage its downsample and its blocks."""
    named = [('stem', backbone.stem)]
    for index, stage in enumerate(backbone.stages):
        if stage.downsample is not None:
            named.append((f'stage{index + 1}.downsample', stage.downsample))
        for number, block in enumerate(stage.blocks):
            named.append((f'stage{index + 1}.{number} {type(block).__name__}', block))
    return named


def run_recording(
    model: nn.Module, blocks: List[Tuple[str, nn.Module]], image: torch.Tensor
) -> Tuple[tuple, Dict[str, tuple]]:
    """``model(image)`` without gradients, and each block's (inputs, output) of that call."""
    seen: Dict[str, tuple] = {}
    handles = []
    for name, block in blocks:

        def hook(module, args, output, name=name):
            seen[name] = (args, output)

        handles.append(block.register_forward_hook(hook))
    try:
        with torch.no_grad():
            outputs = model(image)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, seen


def in_stream_dtype(value, dtype: torch.dtype):
    """A reference input as the tested model's stream holds it (rounded when bf16)."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        layout = torch.channels_last if value.dim() == 4 else torch.contiguous_format
        return value.to(dtype=dtype, memory_format=layout)
    return value


#: the tested modes: name -> float32_residual of switch_to_deploy
MODES = {'bf16 deploy, bf16 stream': False, 'bf16 deploy, fp32 stream': True}


def int8_outputs(reference: nn.Module, size: Tuple[int, int], image: torch.Tensor) -> dict:
    """The INT8 forms' outputs for ``image``: OpenVINO on the NNCF IR of the ONNX export of
    ``reference``, and its PT2E program compiled by Inductor."""
    import os
    import tempfile

    from mmeffformer.export import export_onnx
    from mmeffformer.quantization import QuantizedFeatures, quantize_module, quantize_openvino
    from mmeffformer.runtimes import build_backend

    images = calibration_images(size)
    outputs = {}
    with tempfile.TemporaryDirectory() as folder:
        onnx_file, xml = os.path.join(folder, 'model.onnx'), os.path.join(folder, 'int8.xml')
        export_onnx(reference, onnx_file, size)
        quantize_openvino(onnx_file, [i.numpy() for i in images], xml)
        runtime = build_backend('openvino', xml)
        outputs[f'openvino int8 ({runtime.precision} elsewhere)'] = runtime(image.numpy())
    program = QuantizedFeatures(quantize_module(reference, images).module())
    outputs['pytorch int8 (PT2E, compiled)'] = program(image)
    return outputs


def measure_variant(variant: str, size: Tuple[int, int], blocks: bool, int8: bool) -> dict:
    torch.manual_seed(0)
    backbone, _ = build_model(recipe(variant), 'backbone')
    trained_like(backbone)
    reference = deployed(backbone, size)
    image = torch.rand(1, 3, *size)
    ref_blocks = blocks_in_order(reference)
    ref_out, ref_seen = run_recording(reference, ref_blocks, image)
    rows = {
        name: dict(block=name, magnitude=ref_seen[name][1].abs().max().item())
        for name, _ in ref_blocks
    }
    outputs = {}
    for mode, float32_residual in MODES.items():
        low = deployed(backbone, size, dtype=torch.bfloat16, float32_residual=float32_residual)
        low_blocks = blocks_in_order(low)
        low_out, low_seen = run_recording(low, low_blocks, image)
        with torch.no_grad():
            for (name, _), (_, low_block) in zip(ref_blocks, low_blocks):
                ref_args, ref_output = ref_seen[name]
                inputs = [in_stream_dtype(a, low.residual_dtype) for a in ref_args]
                own = low_block(*inputs)
                rows[name][f'{mode} own'] = relative_error(own, ref_output)
                rows[name][f'{mode} accumulated'] = relative_error(low_seen[name][1], ref_output)
        outputs[mode] = output_errors(low_out, ref_out)
    runtime = runtimes_on_export(reference, size, ['openvino'])['openvino']
    outputs[runtime.describe()] = output_errors(runtime(image.numpy()), ref_out)
    if int8:
        for form, got in int8_outputs(reference, size, image).items():
            outputs[form] = output_errors(got, ref_out)
    row = dict(variant=variant, size=size_name(size), outputs=outputs)
    if blocks:
        row['blocks'] = list(rows.values())
    return row


def output_errors(got, want) -> List[float]:
    """``relative_error`` of each output."""
    return [relative_error(g, w) for g, w in zip(got, want)]


def measure(args: argparse.Namespace) -> dict:
    size = parse_size(args.size)
    rows = [measure_variant(v, size, v in args.blocks, args.int8) for v in args.variants]
    return dict(method='Error at strides 4 / 8 / 16 / 32.', rows=rows)


def render(section: dict, machine: dict) -> List[str]:
    body = [
        [row['variant'], row['size'], mode, ' / '.join(f'{e:.1e}' for e in errors)]
        for row in section['rows']
        for mode, errors in row['outputs'].items()
    ]
    lines = [*section_header(section), *table(['backbone', 'input', 'form', 'error'], body), '']
    columns = [f'{mode} {part}' for mode in MODES for part in ('own', 'accumulated')]
    for row in section['rows']:
        if not row.get('blocks'):
            continue
        cells = [
            [block['block'], *[f'{block[c]:.1e}' for c in columns], f'{block["magnitude"]:.3g}']
            for block in row['blocks']
        ]
        lines += [f'{row["variant"]} at {row["size"]}, block by block:', '']
        lines += [*table(['block', *columns, 'largest value'], cells), '']
    return lines
