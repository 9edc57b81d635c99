"""Where the bf16 deploy error of a backbone comes from, block by block.

Usage: python benchmarks/bf16_error.py [--variants l1 l3 v2-s0] [--shape 800 1216]
Writes docs/bf16_error.json and docs/bf16_error.md (one run, one machine).

Weights: the detection recipe's backbone, random, with trained-like BatchNorm statistics
and layer scales (``trained_like``). Reference: the fp32 deploy backbone; tested: the
same weights in bf16 deploy. Every error is the largest absolute difference over the
largest reference value of that tensor. Per block (the stem, each downsample, each
block, in order):

- accumulated: the bf16 model's block output against the fp32 one (both run whole);
- own: the bf16 block given the fp32 block's input (as the tested stream holds it:
  rounded to bf16 in the bf16-stream mode), against the fp32 block output: what the
  block adds by itself.

Two modes: the default bf16 deploy (float32 residual stream) and
``float32_residual=False`` (the stream rounded to bf16 at every block).

Beside them, OpenVINO on the ONNX export of the fp32 deploy backbone, in its default
precision (bf16 where the CPU has native bf16, else fp32: its row names which).

PyTorch's error does not depend on the CPU's bf16 support (emulated bf16 rounds the
same way); only the time does, and this script does not time anything.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    ROOT,
    machine_description,
    openvino_on_export,
    output_errors,
    recipe,
    relative_error,
    trained_like,
)
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils.model_analysis import build_model  # noqa: E402

JSON = ROOT / 'docs' / 'bf16_error.json'
PAGE = ROOT / 'docs' / 'bf16_error.md'


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
MODES = {'bf16 stream': False, 'fp32 stream': True}


def measure_variant(variant: str, size: Tuple[int, int]) -> dict:
    torch.manual_seed(0)
    backbone, _ = build_model(recipe(variant, size), 'backbone')
    trained_like(backbone)
    reference = switch_to_deploy(copy.deepcopy(backbone), sizes=[size])
    image = torch.rand(1, 3, *size)
    ref_blocks = blocks_in_order(reference)
    ref_out, ref_seen = run_recording(reference, ref_blocks, image)
    rows = {
        name: dict(block=name, magnitude=ref_seen[name][1].abs().max().item())
        for name, _ in ref_blocks
    }
    outputs = {}
    for mode, float32_residual in MODES.items():
        low = switch_to_deploy(
            copy.deepcopy(backbone),
            sizes=[size],
            dtype=torch.bfloat16,
            float32_residual=float32_residual,
        )
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
    runtime = openvino_on_export(reference, size)
    outputs[runtime.describe()] = output_errors(runtime(image.numpy()), ref_out)
    return dict(variant=variant, size=list(size), outputs=outputs, blocks=list(rows.values()))


def render(results: dict) -> str:
    lines = [
        '# bf16 deploy error, block by block',
        '',
        f'Computed on: {results["machine"]}; command: `{results["command"]}`. Detection-recipe '
        'backbones with random weights, trained-like BatchNorm statistics and layer scales; '
        'reference: fp32 deploy on the same weights. Error: largest absolute difference over '
        'the largest reference value.',
        '',
        'Modes: *fp32 stream* is `switch_to_deploy(..., dtype=torch.bfloat16)` (the default: '
        'the residual stream stays float32, stem, downsamples and branches compute in bf16); '
        '*bf16 stream* adds `float32_residual=False` (the stream is rounded to bf16 after '
        'every block); *openvino* runs the ONNX export of the fp32 deploy backbone in its '
        'default precision (bf16 where the CPU has native bf16). *Accumulated*: the bf16 '
        'model run whole; *own*: the bf16 block given the fp32 reference input (as the stream '
        'holds it), what the block adds by itself.',
        '',
        '| backbone | size | mode | error at strides 4 / 8 / 16 / 32 |',
        '|---|---|---|---|',
    ]
    for row in results['rows']:
        for mode, errors in row['outputs'].items():
            outputs = ' / '.join(f'{e:.1e}' for e in errors)
            lines.append(
                f'| {row["variant"]} | {row["size"][0]}x{row["size"][1]} | {mode} | {outputs} |'
            )
    lines.append('')
    for row in results['rows']:
        columns = [f'{mode} {part}' for mode in MODES for part in ('own', 'accumulated')]
        lines += [
            f'## {row["variant"]}, {row["size"][0]}x{row["size"][1]}',
            '',
            '| block | ' + ' | '.join(columns) + ' | largest value |',
            '|---|' + '---|' * len(columns) + '---|',
        ]
        for block in row['blocks']:
            cells = ' | '.join(f'{block[c]:.1e}' for c in columns)
            lines.append(f'| {block["block"]} | {cells} | {block["magnitude"]:.3g} |')
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', default=['l1', 'l3', 'v2-s0'])
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    args = parser.parse_args(argv)
    size = tuple(args.shape)
    rows = []
    for variant in args.variants:
        rows.append(measure_variant(variant, size))
        print(json.dumps(rows[-1]), flush=True)
    results = dict(
        machine=machine_description(),
        command=f'python benchmarks/bf16_error.py --variants {" ".join(args.variants)} '
        f'--shape {size[0]} {size[1]}',
        rows=rows,
    )
    JSON.write_text(json.dumps(results, indent=1) + '\n')
    PAGE.write_text(render(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
