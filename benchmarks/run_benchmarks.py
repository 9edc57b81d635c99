"""Speed benchmarks of the backbones, their deploy mode and ONNX Runtime, against peers.

Usage: python benchmarks/run_benchmarks.py [--out docs/benchmarks.md] [--repeats 5]
           [--threads T] [--quick]

One run writes every table of ``docs/benchmarks.md`` and the plot
``docs/latency_vs_size.png``. Latency: batch 1, fp32, median of ``--repeats``
timed calls after 2 warm-up calls; eval, deploy and ONNX Runtime calls are
timed in turns (so a slow phase of the machine affects all three). The whole
run keeps freed memory in the process (``mmeffformer.analysis.keep_freed_memory``);
one row measures l1 with glibc's default behaviour in a separate process.
``--quick`` runs two variants and fewer sizes (for checking the script).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.analysis import (  # noqa: E402
    build_model,
    count_flops,
    keep_freed_memory,
    model_call,
    time_call,
)
from mmeffformer.export import export_onnx, output_names  # noqa: E402
from mmeffformer.models.deploy import switch_to_deploy  # noqa: E402

VARIANTS = ('l1', 'l3', 'l7', 'v2-s0', 'v2-s1', 'v2-s2', 'v2-l')
PEERS = {'ResNet-50': 50, 'ResNet-18': 18}
SIZES = {'512x512': (512, 512), '800x1216': (800, 1216)}
WARMUP = 2


def recipe(variant: str, size: tuple) -> str:
    """The recipe whose official bias table fits the size (512: segmentation)."""
    if size == (512, 512):
        return str(ROOT / 'configs' / f'semfpn_effformer_{variant}_ade20k.py')
    return str(ROOT / 'configs' / f'maskrcnn_effformer_{variant}_coco.py')


def build_peer(depth: int) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    model = MODELS.build(dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3)))
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return model


def median_ms(call: Callable[[], object], repeats: int) -> float:
    return time_call(call, WARMUP, repeats)['median']


def interleaved_medians(calls: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median ms of each call, timed in turns (eval, deploy, ...) so that a slow
    phase of the machine hits every mode alike and the ratios stay fair."""
    times: Dict[str, List[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(WARMUP):
                call()
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def eval_and_deploy_calls(
    model: torch.nn.Module, scope: str, part: str, size: tuple
) -> Dict[str, Callable[[], object]]:
    """One call per mode on the same weights: the model and a deployed copy."""
    deployed = switch_to_deploy(copy.deepcopy(model), sizes=[size])
    return {
        'eval': model_call(model, scope, part, 1, *size, 'cpu'),
        'deploy': model_call(deployed, scope, part, 1, *size, 'cpu'),
    }


def matmul_gflops(repeats: int) -> float:
    """fp32 GFLOP/s of a 2048 x 2048 matrix product on this machine."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / median_ms(lambda: a @ b, max(repeats, 10)) / 1e6


def onnxruntime_call(module: torch.nn.Module, size: tuple, part: str) -> Callable[[], object]:
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'model.onnx')
        export_onnx(module, path, size, output_names(part))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    image = torch.rand(1, 3, *size).numpy()
    return lambda: session.run(None, {'image': image})


def backbone_rows(variants, repeats: int) -> List[dict]:
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
            else:
                calls = eval_and_deploy_calls(model, scope, 'backbone', size)
                exported = switch_to_deploy(model, sizes=[size])
            calls['onnxruntime'] = onnxruntime_call(exported, size, 'backbone')
            row.update(interleaved_medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def target_rows(repeats: int) -> dict:
    """The three target ratios, each from calls timed in turns with more repeats."""
    l1, scope = build_model(recipe('l1', (512, 512)), 'backbone')
    small = interleaved_medians(eval_and_deploy_calls(l1, scope, 'backbone', (512, 512)), repeats)
    size = (800, 1216)
    l1, scope = build_model(recipe('l1', size), 'backbone')
    flops = count_flops(model_call(l1, scope, 'backbone', 1, *size, 'cpu'))
    calls = eval_and_deploy_calls(l1, scope, 'backbone', size)
    calls['resnet50'] = model_call(build_peer(50), 'mmdet', 'backbone', 1, *size, 'cpu')
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    calls['matmul'] = lambda: a @ b
    large = interleaved_medians(calls, max(repeats // 3, 5))
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


def size_rows(variants, sizes, repeats: int) -> List[dict]:
    rows = []
    for name in variants:
        for side in sizes:
            model, scope = build_model(recipe(name, (512, 512)), 'backbone')
            calls = eval_and_deploy_calls(model, scope, 'backbone', (side, side))
            row = dict(model=name, side=side, **interleaved_medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def whole_model_rows(variants, repeats: int) -> List[dict]:
    rows = []
    for name in variants:
        for kind, size in (('Mask R-CNN', (800, 1216)), ('Semantic FPN', (512, 512))):
            model, scope = build_model(recipe(name, size), 'model')
            row = dict(model=f'{kind} {name}', size=f'{size[0]}x{size[1]}')
            calls = eval_and_deploy_calls(model, scope, 'model', size)
            row.update(interleaved_medians(calls, repeats))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def profile_rows(variant: str, deploy: bool, top: int = 10) -> List[dict]:
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


def train_step(repeats: int) -> dict:
    """Semantic FPN l1 training steps at 512x512, batch 2 (run in its own process)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    model, _ = build_model(recipe('l1', (512, 512)), 'model')
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    samples = []
    for _ in range(2):
        meta = dict(img_shape=(512, 512), ori_shape=(512, 512), pad_shape=(512, 512))
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 512, 512)))
        samples.append(sample)
    images = torch.rand(2, 3, 512, 512)

    def step() -> None:
        losses = model(images, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    return dict(step_ms=times[len(times) // 2], rss_before_mb=before, rss_peak_mb=peak)


def default_allocator_l1(repeats: int) -> dict:
    model, scope = build_model(recipe('l1', (512, 512)), 'backbone')
    call = model_call(model, scope, 'backbone', 1, 512, 512, 'cpu')
    return dict(eval=median_ms(call, repeats))


def in_subprocess(section: str, args: argparse.Namespace, keep_memory: bool) -> dict:
    command = [sys.executable, __file__, '--section', section, '--repeats', str(args.repeats)]
    command += ['--threads', str(args.threads)] + ([] if keep_memory else ['--default-malloc'])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt(value: Optional[float], digits: int = 1) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def write_plot(rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r['model'] for r in rows):
        for mode, style in (('eval', '-o'), ('deploy', '--s')):
            points = [(r['side'], r[mode]) for r in rows if r['model'] == name]
            axis.plot(*zip(*points), style, label=f'{name} {mode}')
    axis.set_xlabel('input side (px, square)')
    axis.set_ylabel('backbone latency (ms, batch 1)')
    axis.set_title('Latency vs input size (CPU, fp32)')
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def report(results: dict, command: str) -> str:
    machine = results['machine']
    rate = machine['matmul_gflops']
    lines = [
        '# Benchmarks',
        '',
        f'One run of `{command}` ({machine["date"]}, {machine["minutes"]:.0f} minutes).',
        f'Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["threads"]} threads, '
        f'torch {machine["torch"]}, ONNX Runtime {machine["onnxruntime"]}, fp32, batch 1, '
        f'median of {machine["repeats"]} timed calls after {WARMUP} warm-up calls; the modes of '
        'one model are timed in turns (eval, deploy, ONNX Runtime, eval, ...). '
        'The process keeps freed memory (`keep_freed_memory`, see below).',
        'Machine fp32 matrix-multiply rate (2048 x 2048 x 2048, mean of before and after the '
        f'tables): **{rate:.1f} GFLOP/s**.',
        '',
        '## Backbone latency (ms)',
        '',
        'EfficientFormer backbones as in the recipes (official bias mode, 800 table at '
        "800x1216, 512 table at 512x512); ResNets are mmdet's `ResNet` (4 stages). "
        "FLOPs counted with `tools/get_flops.py`'s counter; throughput = FLOPs / deploy "
        '(ResNets: eval) latency.',
        '',
        '| backbone | input | GFLOPs | eval | deploy | ONNX Runtime | deploy / eval speed-up '
        '| throughput GFLOP/s | % of matmul rate |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in results['backbones']:
        best = row.get('deploy', row['eval'])
        speedup = row['eval'] / row['deploy'] if 'deploy' in row else None
        throughput = row['gflops'] / best * 1000
        lines.append(
            f'| {row["model"]} | {row["size"]} | {row["gflops"]:.1f} | {row["eval"]:.1f} '
            f'| {fmt(row.get("deploy"))} | {row["onnxruntime"]:.1f} | {fmt(speedup, 2)}'
            f' | {throughput:.1f} | {100 * throughput / rate:.0f}% |'
        )
    by = {(r['model'], r['size']): r for r in results['backbones']}
    t = results['targets']
    det_rate = t['l1_det_gflops'] / t['det_deploy'] * 1000
    lines += [
        '',
        '## Targets',
        '',
        'Measured for the targets with more repeats, the calls of each line timed in turns '
        f'(512x512: {t["repeats_512"]} rounds of eval, deploy; 800x1216: '
        f'{t["repeats_large"]} rounds of l1 eval, l1 deploy, ResNet-50, 2048-matmul):',
        '',
        f'- l1 deploy vs eval at 512x512: {t["l1_512_eval"]:.1f} / {t["l1_512_deploy"]:.1f} ms'
        f' = **{t["l1_512_eval"] / t["l1_512_deploy"]:.2f}x** (target >= 1.3x).',
        f'- ResNet-50 / l1 at 800x1216: {t["det_resnet50"]:.0f} ms / {t["det_eval"]:.0f} ms '
        f'eval = **{t["det_resnet50"] / t["det_eval"]:.2f}x**, / {t["det_deploy"]:.0f} ms '
        f'deploy = **{t["det_resnet50"] / t["det_deploy"]:.2f}x** (target >= 2x).',
        f'- l1 deploy throughput at 800x1216: {t["l1_det_gflops"]:.1f} GFLOP / '
        f'{t["det_deploy"]:.0f} ms = {det_rate:.1f} GFLOP/s = '
        f'**{100 * det_rate / t["matmul_gflops"]:.0f}%** of the {t["matmul_gflops"]:.1f} GFLOP/s '
        'matmul rate timed in the same rounds (target >= 70%).',
        '',
        'The same ratios from the tables above (5 rounds, other moments of the run):',
        '',
    ]
    l1_512, l1_det = by[('l1', '512x512')], by[('l1', '800x1216')]
    if ('ResNet-50', '800x1216') in by:
        r50 = by[('ResNet-50', '800x1216')]
        lines.append(
            f'- l1 deploy vs eval at 512x512: {l1_512["eval"] / l1_512["deploy"]:.2f}x '
            f'(target >= 1.3x).'
        )
        lines.append(
            f'- ResNet-50 / l1 latency at 800x1216: eval {r50["eval"] / l1_det["eval"]:.2f}x, '
            f'deploy {r50["eval"] / l1_det["deploy"]:.2f}x, ONNX Runtime '
            f'{r50["onnxruntime"] / l1_det["onnxruntime"]:.2f}x (target >= 2x).'
        )
        l1_rate = l1_det['gflops'] / l1_det['deploy'] * 1000
        lines.append(
            f'- l1 throughput at 800x1216 (deploy): {l1_rate:.1f} GFLOP/s = '
            f'{100 * l1_rate / rate:.0f}% of the matmul rate (target >= 70%).'
        )
    default = results['default_allocator']
    lines += [
        f"- Allocator: l1 eval at 512x512 with glibc's default settings (separate process): "
        f'{default["eval"]:.1f} ms vs {l1_512["eval"]:.1f} ms with freed memory kept.',
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
    lines += [
        '## Latency vs input size (backbone, square inputs, ms)',
        '',
        '![latency vs size](latency_vs_size.png)',
        '',
        '| backbone | side | eval | deploy |',
        '|---|---|---|---|',
    ]
    for row in results['sizes']:
        lines.append(
            f'| {row["model"]} | {row["side"]} | {row["eval"]:.1f} | {row["deploy"]:.1f} |'
        )
    lines += [
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
    train = results['train']
    lines += [
        '',
        '## Semantic FPN l1 training step (512x512, batch 2, AdamW, separate process)',
        '',
        f'- step time: {train["step_ms"]:.0f} ms (median of {machine["repeats"]} steps after 1)',
        f'- peak resident memory: {train["rss_peak_mb"]:.0f} MiB '
        f'({train["rss_before_mb"]:.0f} MiB before the first step, i.e. '
        f'{train["rss_peak_mb"] - train["rss_before_mb"]:.0f} MiB for the steps)',
        '',
    ]
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=str(ROOT / 'docs' / 'benchmarks.md'))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--quick', action='store_true')
    parser.add_argument(
        '--render', metavar='JSON', help='only rewrite the markdown from a saved benchmarks.json'
    )
    parser.add_argument('--section', choices=['train', 'default-allocator'], help=argparse.SUPPRESS)
    parser.add_argument('--default-malloc', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.default_malloc and not keep_freed_memory():
        parser.error('glibc mallopt is not available: cannot keep freed memory')
    if args.render:
        results = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(report(results, results['command']) + '\n')
        return 0
    if args.section:
        section = train_step if args.section == 'train' else default_allocator_l1
        print(json.dumps(section(args.repeats)))
        return 0

    import onnxruntime

    start = time.time()
    variants = ('l1', 'v2-s0') if args.quick else VARIANTS
    sides = (256, 512) if args.quick else (256, 384, 512, 640, 768, 896, 1024)
    results: Dict[str, object] = {}
    results['default_allocator'] = in_subprocess('default-allocator', args, keep_memory=False)
    results['train'] = in_subprocess('train', args, keep_memory=True)
    rate = matmul_gflops(args.repeats)
    results['targets'] = target_rows(4 * args.repeats + 1)
    results['backbones'] = backbone_rows(variants, args.repeats)
    results['profile'] = {m: profile_rows('l1', m == 'deploy') for m in ('eval', 'deploy')}
    results['sizes'] = size_rows(('l1', 'v2-s0'), sides, args.repeats)
    results['whole'] = whole_model_rows(('l1', 'v2-s0'), args.repeats)
    rate = (rate + matmul_gflops(args.repeats)) / 2  # before and after: the machine may drift
    results['machine'] = dict(
        cpu=cpu_name(),
        cores=os.cpu_count(),
        threads=args.threads,
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        repeats=args.repeats,
        matmul_gflops=rate,
        date=time.strftime('%Y-%m-%d'),
        minutes=(time.time() - start) / 60,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_plot(results['sizes'], out.parent / 'latency_vs_size.png')
    command = 'python benchmarks/run_benchmarks.py' + (' --quick' if args.quick else '')
    results['command'] = command
    (out.parent / 'benchmarks.json').write_text(json.dumps(results, indent=1))
    out.write_text(report(results, command) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
