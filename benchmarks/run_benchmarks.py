"""Every speed benchmark of docs/benchmarks.md in one run: backbones against peers, deploy
mode and ONNX Runtime, input sizes, whole models, a training step, the allocator.

Usage: python benchmarks/run_benchmarks.py [--out docs/benchmarks.md] [--repeats 5]
           [--threads T] [--quick] [--render benchmarks.json]

Each part is a script of its own (``backbone_latency.py``, ``input_sizes.py``,
``whole_models.py``, ``segmentor_training.py``, ``allocator.py``); this one runs them
in the order below and writes ``docs/benchmarks.md``, ``docs/benchmarks.json`` and
``docs/latency_vs_size.png``. Latency: batch 1, fp32, median of ``--repeats`` timed
calls after 2 warm-up calls; eval, deploy and ONNX Runtime calls are timed in turns
(so a slow phase of the machine affects all three). The run keeps freed memory in the
process (``mmeffformer.utils.keep_freed_memory``); the allocator row measures l1 with
glibc's default behaviour in a separate process. ``--quick`` runs two variants and
fewer sizes (for checking the script); ``--render`` only rewrites the markdown from a
saved ``benchmarks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import (  # noqa: E402
    allocator,
    backbone_latency,
    input_sizes,
    segmentor_training,
    whole_models,
)
from benchmarks.common import ROOT, WARMUP  # noqa: E402
from mmeffformer.utils import cpu_info, keep_freed_memory, matmul_gflops  # noqa: E402


def machine_rate(repeats: int) -> float:
    """fp32 GFLOP/s of a 2048 x 2048 matrix product on this machine."""
    return matmul_gflops(WARMUP, max(repeats, 10))


def machine_facts(repeats: int, rate: float, threads: int = 0, minutes: float = 0.0) -> dict:
    import onnxruntime
    import openvino

    return dict(
        cpu=cpu_info()['model'],
        cores=os.cpu_count(),
        threads=threads or torch.get_num_threads(),
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        openvino=openvino.__version__,
        repeats=repeats,
        matmul_gflops=rate,
        date=time.strftime('%Y-%m-%d'),
        minutes=minutes,
    )


def in_subprocess(script: str, args: argparse.Namespace, *extra: str) -> dict:
    """The JSON that a benchmark script prints last, run in a fresh process."""
    command = [sys.executable, str(ROOT / 'benchmarks' / script), '--repeats', str(args.repeats)]
    command += ['--threads', str(args.threads), *extra]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(results: dict, command: str) -> str:
    machine = results['machine']
    lines: List[str] = [
        '# Benchmarks',
        '',
        f'One run of `{command}` ({machine["date"]}, {machine["minutes"]:.0f} minutes).',
        f'Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["threads"]} threads, '
        f'torch {machine["torch"]}, ONNX Runtime {machine["onnxruntime"]}, OpenVINO '
        f'{machine.get("openvino", "—")}, fp32, batch 1, '
        f'median of {machine["repeats"]} timed calls after {WARMUP} warm-up calls; the modes of '
        'one model are timed in turns (eval, deploy, compiled, ONNX Runtime, OpenVINO, eval, '
        '...). '
        'The process keeps freed memory (`keep_freed_memory`, see below).',
        'Machine fp32 matrix-multiply rate (2048 x 2048 x 2048, mean of before and after the '
        f'tables): **{machine["matmul_gflops"]:.1f} GFLOP/s**.',
        '',
    ]
    lines += backbone_latency.render_backbones(results)
    lines += backbone_latency.render_ratios(results)
    lines += allocator.render(results)
    lines += backbone_latency.render_profile(results)
    lines += input_sizes.render(results)
    lines += whole_models.render(results)
    lines += segmentor_training.render(results)
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
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(report(results, results['command']) + '\n')
        return 0
    torch.set_num_threads(args.threads)
    if not keep_freed_memory():
        parser.error('glibc mallopt is not available: cannot keep freed memory')

    start = time.time()
    results: Dict[str, object] = {}
    results['default_allocator'] = in_subprocess('allocator.py', args)
    results['train'] = in_subprocess('segmentor_training.py', args, '--json')
    rate = machine_rate(args.repeats)
    results.update(backbone_latency.measure(args.repeats, args.quick))
    results.update(input_sizes.measure(args.repeats, args.quick))
    results.update(whole_models.measure(args.repeats))
    rate = (rate + machine_rate(args.repeats)) / 2  # before and after: the machine may drift
    results['machine'] = machine_facts(args.repeats, rate, args.threads, (time.time() - start) / 60)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    input_sizes.write_plot(results['sizes'], out.parent / 'latency_vs_size.png')
    command = 'python benchmarks/run_benchmarks.py' + (' --quick' if args.quick else '')
    results['command'] = command
    (out.parent / 'benchmarks.json').write_text(json.dumps(results, indent=1))
    out.write_text(report(results, command) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
