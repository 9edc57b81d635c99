"""Backbone latency of every variant and of ResNet-50 / ResNet-18 in eval mode, deploy mode
and ONNX Runtime; the headline ratios with more repeats; the top operators of l1.

Usage: python benchmarks/backbone_latency.py [--repeats 5] [--quick]
(prints its part of docs/benchmarks.md; ``benchmarks/run_benchmarks.py`` runs every part).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    PEERS,
    SIZES,
    VARIANTS,
    WARMUP,
    build_peer,
    eval_and_deploy_calls,
    fmt,
    medians,
    recipe,
    runtimes_on_export,
)
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.models.deploy_mode import compile_frozen  # noqa: E402
from mmeffformer.utils import keep_freed_memory  # noqa: E402
from mmeffformer.utils.model_analysis import build_model, count_flops, model_call  # noqa: E402


def backbone_rows(variants, repeats: int) -> List[dict]:
    """Each backbone at each size: eval, deploy (EfficientFormers), compiled (the deploy
    model compiled; ResNets: the eval model, frozen the same way), and ONNX Runtime and
    OpenVINO in fp32 on one export of the deploy model (ResNets: eval)."""
    rows = []
    for name in list(variants) + list(PEERS):
        for label, size in SIZES.items():
            if name in PEERS:
                model, scope = build_peer(PEERS[name]), 'mmdet'
            else:
                model, scope = build_model(recipe(name, size), 'backbone')
            call = model_call(model, scope, 'backbone', 1, *size, 'cpu')
            row = dict(model=name, size=label, gflops=count_flops(call) / 1e9)
            if name in PEERS:
                calls = {'eval': call}
                exported = model
                compiled = copy.deepcopy(model)
                compile_frozen(compiled)  # compiles on its first (warm-up) call
            else:
                calls = eval_and_deploy_calls(model, scope, 'backbone', size)
                # a copy: deploy mode rewrites in place, and ``calls['eval']`` runs ``model``
                exported = switch_to_deploy(copy.deepcopy(model), sizes=[size])
                compiled = switch_to_deploy(copy.deepcopy(model), sizes=[size], compile=True)
            calls['compiled'] = model_call(compiled, scope, 'backbone', 1, *size, 'cpu')
            image = torch.rand(1, 3, *size).numpy()
            runtimes = runtimes_on_export(exported, size, openvino_precision='fp32')
            for runtime_name, runtime in runtimes.items():
                calls[runtime_name] = lambda runtime=runtime, image=image: runtime(image)
            row.update(medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def ratio_rows(repeats: int) -> dict:
    """The headline ratios, each from calls timed in turns with more repeats."""
    l1, scope = build_model(recipe('l1', (512, 512)), 'backbone')
    small = medians(eval_and_deploy_calls(l1, scope, 'backbone', (512, 512)), repeats)
    size = (800, 1216)
    l1, scope = build_model(recipe('l1', size), 'backbone')
    flops = count_flops(model_call(l1, scope, 'backbone', 1, *size, 'cpu'))
    calls = eval_and_deploy_calls(l1, scope, 'backbone', size)
    compiled = switch_to_deploy(copy.deepcopy(l1), sizes=[size], compile=True)
    calls['compiled'] = model_call(compiled, scope, 'backbone', 1, *size, 'cpu')
    resnet50 = build_peer(50)
    calls['resnet50'] = model_call(resnet50, 'mmdet', 'backbone', 1, *size, 'cpu')
    resnet50_compiled = copy.deepcopy(resnet50)
    compile_frozen(resnet50_compiled)
    calls['resnet50_compiled'] = model_call(resnet50_compiled, 'mmdet', 'backbone', 1, *size, 'cpu')
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    calls['matmul'] = lambda: a @ b
    large = medians(calls, max(repeats // 3, 5))
    row = dict(
        l1_512_eval=small['eval'],
        l1_512_deploy=small['deploy'],
        repeats_512=repeats,
        repeats_large=max(repeats // 3, 5),
        l1_det_gflops=flops / 1e9,
        matmul_gflops=2 * 2048**3 / large.pop('matmul') / 1e6,
        **{f'det_{k}': v for k, v in large.items()},
    )
    print(json.dumps(row), flush=True)
    return row


def profile_rows(variant: str, deploy: bool, top: int = 10) -> List[dict]:
    """The ``top`` operators of one backbone forward by self CPU time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    model, scope = build_model(recipe(variant, (512, 512)), 'backbone')
    if deploy:
        switch_to_deploy(model, sizes=[(512, 512)])
    call = model_call(model, scope, 'backbone', 1, 512, 512, 'cpu')
    runs = 5
    with torch.inference_mode():
        for _ in range(WARMUP):
            call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                call()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        dict(
            op=e.key,
            ms=e.self_cpu_time_total / 1000 / runs,
            share=e.self_cpu_time_total / total,
            calls=e.count // runs,
        )
        for e in events[:top]
    ]


def measure(repeats: int, quick: bool) -> dict:
    """``targets`` (the headline ratios), ``backbones`` and ``profile`` of the report."""
    variants = ('l1', 'v2-s0') if quick else VARIANTS
    return dict(
        targets=ratio_rows(4 * repeats + 1),
        backbones=backbone_rows(variants, repeats),
        profile={m: profile_rows('l1', m == 'deploy') for m in ('eval', 'deploy')},
    )


def render_backbones(results: dict) -> List[str]:
    rate = results['machine']['matmul_gflops']
    lines = [
        '## Backbone latency (ms)',
        '',
        'EfficientFormer backbones as in the recipes (official bias mode, 800 table at '
        "800x1216, 512 table at 512x512); ResNets are mmdet's `ResNet` (4 stages). "
        "FLOPs counted with `tools/get_flops.py`'s counter; throughput = FLOPs / deploy "
        '(ResNets: eval) latency. Compiled: `switch_to_deploy(..., compile=True)` (ResNets: '
        'the eval model compiled the same way, frozen, one graph). ONNX Runtime and OpenVINO '
        '(fp32) run one ONNX export of the deploy model (ResNets: eval).',
        '',
        '| backbone | input | GFLOPs | eval | deploy | compiled | ONNX Runtime | OpenVINO fp32 '
        '| deploy / eval speed-up | fastest PyTorch / OpenVINO time '
        '| throughput GFLOP/s | % of matmul rate |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in results['backbones']:
        best = row.get('deploy', row['eval'])
        speedup = row['eval'] / row['deploy'] if 'deploy' in row else None
        fastest = min(row[m] for m in ('eval', 'deploy', 'compiled') if m in row)
        versus_openvino = fastest / row['openvino'] if 'openvino' in row else None
        throughput = row['gflops'] / best * 1000
        lines.append(
            f'| {row["model"]} | {row["size"]} | {row["gflops"]:.1f} | {row["eval"]:.1f} '
            f'| {fmt(row.get("deploy"))} | {fmt(row.get("compiled"))} | {row["onnxruntime"]:.1f} '
            f'| {fmt(row.get("openvino"))} | {fmt(speedup, 2)} | {fmt(versus_openvino, 2)}'
            f' | {throughput:.1f} | {100 * throughput / rate:.0f}% |'
        )
    return lines


def render_ratios(results: dict) -> List[str]:
    rate = results['machine']['matmul_gflops']
    by = {(r['model'], r['size']): r for r in results['backbones']}
    t = results['targets']
    det_rate = t['l1_det_gflops'] / t['det_deploy'] * 1000
    compiled = [t.get('det_resnet50_compiled'), t.get('det_compiled')]
    compiled_ratio = f'{compiled[0] / compiled[1]:.2f}x' if all(compiled) else '—'
    lines = [
        '',
        '## Headline ratios',
        '',
        'Measured with more repeats, the calls of each line timed in turns '
        f'(512x512: {t["repeats_512"]} rounds of eval, deploy; 800x1216: '
        f'{t["repeats_large"]} rounds of l1 eval, l1 deploy, l1 compiled, ResNet-50, ResNet-50 '
        'compiled, 2048-matmul):',
        '',
        f'- l1 deploy vs eval at 512x512: {t["l1_512_eval"]:.1f} / {t["l1_512_deploy"]:.1f} ms'
        f' = **{t["l1_512_eval"] / t["l1_512_deploy"]:.2f}x**.',
        f'- ResNet-50 / l1 at 800x1216: {t["det_resnet50"]:.0f} ms / {t["det_eval"]:.0f} ms '
        f'eval = **{t["det_resnet50"] / t["det_eval"]:.2f}x**, / {t["det_deploy"]:.0f} ms '
        f'deploy = **{t["det_resnet50"] / t["det_deploy"]:.2f}x**.',
        f'- ResNet-50 / l1 at 800x1216, both compiled: {fmt(t.get("det_resnet50_compiled"), 0)} ms'
        f' / {fmt(t.get("det_compiled"), 0)} ms = **{compiled_ratio}**.',
        f'- l1 deploy throughput at 800x1216: {t["l1_det_gflops"]:.1f} GFLOP / '
        f'{t["det_deploy"]:.0f} ms = {det_rate:.1f} GFLOP/s = '
        f'**{100 * det_rate / t["matmul_gflops"]:.0f}%** of the {t["matmul_gflops"]:.1f} GFLOP/s '
        'matmul rate timed in the same rounds.',
        '',
        'The same ratios from the tables above (5 rounds, other moments of the run):',
        '',
    ]
    l1_512, l1_det = by[('l1', '512x512')], by[('l1', '800x1216')]
    if ('ResNet-50', '800x1216') in by:
        r50 = by[('ResNet-50', '800x1216')]
        lines.append(f'- l1 deploy vs eval at 512x512: {l1_512["eval"] / l1_512["deploy"]:.2f}x.')
        lines.append(
            f'- ResNet-50 / l1 latency at 800x1216: eval {r50["eval"] / l1_det["eval"]:.2f}x, '
            f'deploy {r50["eval"] / l1_det["deploy"]:.2f}x, ONNX Runtime '
            f'{r50["onnxruntime"] / l1_det["onnxruntime"]:.2f}x.'
        )
        l1_rate = l1_det['gflops'] / l1_det['deploy'] * 1000
        lines.append(
            f'- l1 throughput at 800x1216 (deploy): {l1_rate:.1f} GFLOP/s = '
            f'{100 * l1_rate / rate:.0f}% of the matmul rate.'
        )
    return lines


def render_profile(results: dict) -> List[str]:
    lines = [
        '',
        '## Top operators (torch.profiler, l1 backbone, 512x512, self CPU time per forward)',
        '',
    ]
    for mode in ('eval', 'deploy'):
        lines += [f'{mode} mode:', '', '| operator | ms | share | calls |', '|---|---|---|---|']
        for op in results['profile'][mode]:
            lines.append(
                f'| `{op["op"]}` | {op["ms"]:.1f} | {100 * op["share"]:.1f}% | {op["calls"]} |'
            )
        lines.append('')
    gemm = ('aten::mkldnn_convolution', 'aten::addmm', 'aten::bmm', 'aten::mm')
    gemm_share = sum(op['share'] for op in results['profile']['eval'] if op['op'] in gemm)
    lines += [
        f'Convolutions and matrix products are {100 * gemm_share:.0f}% of the eval forward; '
        'deploy mode only removes or fuses the rest (BatchNorm, layer-scale multiplies, the '
        "mixer's subtract / divide / add), so even removing all of it would give at most "
        f'{1 / gemm_share:.2f}x at this size.',
        '',
    ]
    return lines


def main(argv=None) -> int:
    from benchmarks.run_benchmarks import machine_facts, machine_rate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--quick', action='store_true', help='l1 and v2-s0 only')
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the tools do
    results = measure(args.repeats, args.quick)
    results['machine'] = machine_facts(args.repeats, machine_rate(args.repeats))
    print('\n'.join(render_backbones(results) + render_ratios(results) + render_profile(results)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
