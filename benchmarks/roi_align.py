"""Is the matmul RoIAlign faster than mmcv's at COCO sizes: one op, the extractors, the model?

RoIs: proposal-like boxes on an 800x1216 image (scale log-uniform in 16-600 px, aspect
ratio e^U(-0.7, 0.7), centres uniform), fixed seed; features: random, 256 channels on the
FPN levels of 800x1216. Parts: one level (1000 RoIs that mmdet's level mapping sends to
stride 4, 7x7, forward and forward + backward); mmdet's ``SingleRoIExtractor`` against
``mmeffformer.MatmulRoIExtractor`` over four levels (1000 box RoIs 7x7, 100 mask RoIs
14x14); Mask R-CNN l1 at 800x1216 with each extractor, fp32 eval and deploy and, where the
CPU has native bf16, three bf16 deploy forms, with torch.profiler's share of RoIAlign and
of ``aten::copy_``.
"""

from __future__ import annotations

import argparse
import copy
import math
from typing import Callable, Dict, List

import torch

from benchmarks.common import bf16_autocast, medians, recipe, section_header
from mmeffformer.utils import cpu_has_native_bf16

NAME = 'roi_align'
TITLE = 'RoIAlign at COCO sizes'
QUICK = dict(repeats=2, parts=['op', 'extractor'])
PARTS = ('op', 'extractor', 'model')

IMAGE = (800, 1216)
STRIDES = (4, 8, 16, 32)
CHANNELS = 256


def proposals(count: int, seed: int, max_scale: float = 600.0) -> torch.Tensor:
    """``(count, 5)`` proposal-like RoIs on image 0 of an 800x1216 batch."""
    generator = torch.Generator().manual_seed(seed)
    height, width = IMAGE
    low, high = math.log(16.0), math.log(max_scale)
    scale = torch.exp(torch.rand(count, generator=generator) * (high - low) + low)
    ratio = torch.exp((torch.rand(count, generator=generator) - 0.5) * 1.4).sqrt()
    half_w, half_h = scale * ratio / 2, scale / ratio / 2
    cx = torch.rand(count, generator=generator) * width
    cy = torch.rand(count, generator=generator) * height
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1)
    boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([width, height, width, height]))
    return torch.cat([torch.zeros(count, 1), boxes], 1)


def level_features(dtype: torch.dtype, channels_last: bool) -> List[torch.Tensor]:
    torch.manual_seed(0)
    feats = [torch.randn(1, CHANNELS, IMAGE[0] // s, IMAGE[1] // s) for s in STRIDES]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return [f.to(dtype=dtype, memory_format=layout) for f in feats]


def backward_call(layer: Callable, feature: torch.Tensor, rois: torch.Tensor) -> Callable:
    leaf = feature.detach().requires_grad_(True)

    def call():
        with torch.inference_mode(False), torch.enable_grad():  # the timer runs in inference mode
            layer(leaf, rois).sum().backward()
        leaf.grad = None

    return call


def op_rows(repeats: int) -> List[dict]:
    from mmcv.ops import RoIAlign

    from mmeffformer.models.layers.roi_align import MatmulRoIAlign

    rois = proposals(1000, seed=1, max_scale=112.0)
    mmcv, ours = RoIAlign(7, 1 / 4, 0), MatmulRoIAlign(7, 1 / 4, 0)
    fp32 = level_features(torch.float32, False)[0]
    fp32_cl = fp32.contiguous(memory_format=torch.channels_last)
    bf16_cl = fp32_cl.bfloat16()
    with torch.no_grad():
        error = (ours(fp32, rois) - mmcv(fp32, rois)).abs().max().item()
        bf16_error = (ours(bf16_cl, rois).float() - mmcv(fp32, rois)).abs().max().item()
        forward = medians(
            {
                'mmcv fp32': lambda: mmcv(fp32, rois),
                'matmul fp32': lambda: ours(fp32, rois),
                'matmul fp32, channels-last': lambda: ours(fp32_cl, rois),
                'matmul bf16, channels-last': lambda: ours(bf16_cl, rois),
            },
            repeats,
        )
    both = medians(
        {
            'mmcv fp32': backward_call(mmcv, fp32, rois),
            'matmul fp32': backward_call(ours, fp32, rois),
            'matmul fp32, channels-last': backward_call(ours, fp32_cl, rois),
            'matmul bf16, channels-last': backward_call(ours, bf16_cl, rois),
        },
        repeats,
    )
    return [
        dict(part='forward', ms=forward, max_abs_diff_fp32=error, max_abs_diff_bf16=bf16_error),
        dict(part='forward + backward', ms=both),
    ]


def extractor_row(repeats: int, name: str, count: int, size: int) -> dict:
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from mmeffformer.models.roi_heads import MatmulRoIExtractor

    fp32, bf16_cl = level_features(torch.float32, False), level_features(torch.bfloat16, True)
    args = dict(
        roi_layer=dict(type='RoIAlign', output_size=size, sampling_ratio=0),
        out_channels=CHANNELS,
        featmap_strides=list(STRIDES),
    )
    mmdets, ours = SingleRoIExtractor(**args), MatmulRoIExtractor(**args)
    rois = proposals(count, seed=2)
    with torch.no_grad():
        error = (ours(fp32, rois) - mmdets(fp32, rois)).abs().max().item()
        calls: Dict[str, Callable] = {
            'mmdet fp32': lambda: mmdets(fp32, rois),
            'matmul fp32': lambda: ours(fp32, rois),
            'matmul bf16, channels-last': lambda: ours(bf16_cl, rois),
        }
        ms = medians(calls, repeats)
    return dict(rois=name, count=count, output=size, ms=ms, max_abs_diff_fp32=error)


def extractor_rows(repeats: int) -> List[dict]:
    return [extractor_row(repeats, 'box', 1000, 7), extractor_row(repeats, 'mask', 100, 14)]


def with_extractors(cfg, extractor_type: str):
    """``cfg`` with both RoI extractors of type ``extractor_type``."""
    cfg = copy.deepcopy(cfg)
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        cfg.model.roi_head[key].type = extractor_type
    return cfg


def profile_shares(call: Callable) -> Dict[str, float]:
    """Share of one call's CPU time in the RoIAlign ops and in ``aten::copy_``."""
    from torch.profiler import profile

    call()
    with profile() as prof:
        call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    roi = sum(
        e.cpu_time_total
        for e in events
        if e.key in ('RoIAlignFunction', 'WindowedRoIAlign', 'WindowedRoIAlignBackward')
    )
    copies = sum(e.self_cpu_time_total for e in events if e.key == 'aten::copy_')
    return dict(roi_align=roi / total, copy=copies / total)


def model_rows(repeats: int) -> List[dict]:
    from mmengine.config import Config

    from mmeffformer.models import switch_to_deploy
    from mmeffformer.utils.model_analysis import build_model_from_cfg, model_call

    cfg = Config.fromfile(recipe('l1', 'detection'))
    modes = ['fp32 eval', 'deploy fp32']
    # bf16 deploy forms (switch_to_deploy options), each run under autocast for the heads
    bf16_forms = {
        'deploy bf16 + autocast': {},
        'deploy bf16, bf16 stream + autocast': dict(float32_residual=False),
        'deploy bf16 compiled + autocast': dict(compile=True),
    }
    if cpu_has_native_bf16():
        modes += list(bf16_forms)
    rows = []
    for name, extractor in (
        ('mmdet', 'SingleRoIExtractor'),
        ('matmul', 'mmeffformer.MatmulRoIExtractor'),
    ):
        torch.manual_seed(0)
        model = build_model_from_cfg(with_extractors(cfg, extractor), 'model')
        calls = {'fp32 eval': model_call(model, 'mmdet', 'model', 1, *IMAGE, 'cpu')}
        deployed = switch_to_deploy(copy.deepcopy(model), sizes=[IMAGE])
        calls['deploy fp32'] = model_call(deployed, 'mmdet', 'model', 1, *IMAGE, 'cpu')
        for mode in modes[2:]:
            low = switch_to_deploy(
                copy.deepcopy(model), sizes=[IMAGE], dtype=torch.bfloat16, **bf16_forms[mode]
            )
            calls[mode] = bf16_autocast(model_call(low, 'mmdet', 'model', 1, *IMAGE, 'cpu'))
        with torch.no_grad():
            ms = medians(calls, repeats)
            shares = {mode: profile_shares(calls[mode]) for mode in modes[1:]}
        rows.append(dict(extractor=name, ms=ms, shares=shares))
        print(rows[-1], flush=True)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS)


def measure(args: argparse.Namespace) -> dict:
    from mmeffformer.utils import keep_freed_memory

    keep_freed_memory()  # as the tools do
    section = dict(repeats=args.repeats)
    if 'op' in args.parts:
        section['op'] = op_rows(args.repeats)
    if 'extractor' in args.parts:
        section['extractor'] = extractor_rows(args.repeats)
    if 'model' in args.parts:
        section['model'] = model_rows(args.repeats)
    section['method'] = (
        f'Median ms of {args.repeats} calls after 2 warm-up calls, the columns timed in turns. '
        'mmcv: `mmcv.ops.RoIAlign` (one thread, float32); matmul: '
        "`mmeffformer.MatmulRoIExtractor` and its RoIAlign (this machine's threads)."
    )
    return section


def render(results: dict, machine: dict) -> List[str]:
    lines = section_header(results)
    if results.get('op'):
        modes = list(results['op'][0]['ms'])
        lines += ['One level, 1000 RoIs on the 200x304 stride-4 map, 7x7 (ms):', '']
        lines.append('| pass | ' + ' | '.join(modes) + ' |')
        lines.append('|---|' + '---|' * len(modes))
        for row in results['op']:
            cells = ' | '.join(f'{row["ms"][m]:.1f}' for m in modes)
            lines.append(f'| {row["part"]} | {cells} |')
        forward = results['op'][0]
        lines += [
            '',
            f'Largest difference from mmcv: {forward["max_abs_diff_fp32"]:.1e} in fp32, '
            f'{forward["max_abs_diff_bf16"]:.1e} in bf16 (features of unit variance).',
            '',
        ]
    if results.get('extractor'):
        modes = list(results['extractor'][0]['ms'])
        lines += ['Extractors over four levels (ms):', '']
        lines.append('| RoIs | ' + ' | '.join(modes) + ' | largest fp32 difference |')
        lines.append('|---|' + '---|' * (len(modes) + 1))
        for row in results['extractor']:
            cells = ' | '.join(f'{row["ms"][m]:.1f}' for m in modes)
            label = f'{row["rois"]}: {row["count"]}, {row["output"]}x{row["output"]}'
            lines.append(f'| {label} | {cells} | {row["max_abs_diff_fp32"]:.1e} |')
        lines.append('')
    if results.get('model'):
        modes = list(results['model'][0]['ms'])
        lines += [
            'Mask R-CNN l1, 800x1216, whole model (ms per image):',
            '',
            '| RoI extractor | ' + ' | '.join(modes) + ' |',
            '|---|' + '---|' * len(modes),
        ]
        for row in results['model']:
            cells = ' | '.join(f'{row["ms"][m]:.0f}' for m in modes)
            lines.append(f'| {row["extractor"]} | {cells} |')
        lines += ['', 'Share of one call in RoIAlign / in `aten::copy_` (torch.profiler):', '']
        shared = list(results['model'][0]['shares'])
        lines.append('| RoI extractor | ' + ' | '.join(shared) + ' |')
        lines.append('|---|' + '---|' * len(shared))
        for row in results['model']:
            cells = ' | '.join(
                f'{row["shares"][m]["roi_align"]:.0%} / {row["shares"][m]["copy"]:.0%}'
                for m in shared
            )
            lines.append(f'| {row["extractor"]} | {cells} |')
        lines.append('')
    return lines
