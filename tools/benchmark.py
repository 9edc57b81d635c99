"""Latency / throughput of a config's backbone or whole model.

Usage: python tools/benchmark.py CONFIG [--part backbone|model] [--shape H W]
           [--batch N] [--threads T] [--dtype float32|bfloat16|float16] [--channels-last]
           [--device cpu|cuda] [--warmup W] [--repeats R] [--deploy [--compile]]
           [--keep-freed-memory]
       python tools/benchmark.py CONFIG --backend onnxruntime|openvino --model MODEL.onnx
           [--precision default|fp32|bf16] [--shape H W] [--threads T] [--warmup W] [--repeats R]
       python tools/benchmark.py CONFIG --backend executorch --model MODEL.pte [--shape H W] [...]
       python tools/benchmark.py CONFIG --backend pytorch --model MODEL.pt2 [--shape H W] [...]

Prints the machine (CPU model and its bf16 flags), threads, dtype, layout and
device, then the median latency with its inter-quartile range, the minimum and
the throughput (images / s). With --backend, the exported file (tools/export_onnx.py)
runs in that runtime on a random normalised image of --shape; ``--backend pytorch`` times
the whole model with the INT8 program of ``tools/quantize.py --backend pytorch`` as its
backbone and neck (compiled by Inductor: the warm-up compiles; heads float32).

Reduced dtypes: in eval mode the model runs under autocast; with --deploy the
EfficientFormer backbones compute in the dtype themselves (switch_to_deploy(...,
dtype=...), channels-last) and the rest of a whole model runs under autocast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils import keep_freed_memory, time_call  # noqa: E402
from mmeffformer.utils.cpu_facts import cpu_info  # noqa: E402
from mmeffformer.utils.model_analysis import build_model, model_call  # noqa: E402


def precision_call(call, device: str, dtype: torch.dtype):
    """``call`` under autocast to ``dtype`` (nothing to do for float32)."""
    if dtype == torch.float32:
        return call

    def autocast_call():
        with torch.autocast(device, dtype=dtype):
            return call()

    return autocast_call


def machine_line(args, precision: str, mode: str) -> str:
    cpu = cpu_info()
    return (
        f'{Path(args.config).name} {args.part} {args.shape[0]}x{args.shape[1]} '
        f'batch {args.batch} | '
        f'{args.device} ({cpu["model"]}; bf16 flags: {", ".join(cpu["bf16_flags"]) or "none"}), '
        f'{args.threads} threads, {precision}, torch {torch.__version__}, {mode}'
    )


def timing_line(args, stats: dict) -> str:
    return (
        f'median {stats["median"]:.1f} ms (IQR {stats["q1"]:.1f}-{stats["q3"]:.1f}), '
        f'min {stats["min"]:.1f} ms, {args.batch * 1000 / stats["median"]:.2f} img/s '
        f'({args.warmup} warm-up, {args.repeats} timed)'
    )


def benchmark_exported(args) -> dict:
    """Time an exported file in its runtime, printed like the PyTorch path."""
    from mmeffformer.runtimes import build_backend

    runtime = build_backend(args.backend, args.model, args.precision, args.device, args.threads)
    image = torch.randn(args.batch, 3, *args.shape).numpy()
    stats = time_call(lambda: runtime(image), args.warmup, args.repeats)
    args.part = 'model'
    print(machine_line(args, runtime.describe(), f'exported {Path(args.model).name}'))
    print(timing_line(args, stats))
    return stats


def benchmark_program(args) -> dict:
    """Time the config's whole model with a .pt2 INT8 program as backbone and neck."""
    from mmeffformer.export import describe, exportable
    from mmeffformer.quantization import read_pt2_description, use_quantized_features
    from mmeffformer.runtimes import check_file_fits

    torch.set_num_threads(args.threads)
    model, scope = build_model(args.config, 'model')
    expected = describe(exportable(model, scope, 'model'))
    check_file_fits(read_pt2_description(args.model), expected, args.model)
    use_quantized_features(model, args.model)
    call = model_call(model, scope, 'model', args.batch, *args.shape, 'cpu')
    stats = time_call(call, args.warmup, args.repeats)
    args.part = 'model'
    print(
        machine_line(
            args, 'int8 backbone and neck, float32 heads', f'PT2E {Path(args.model).name}, compiled'
        )
    )
    print(timing_line(args, stats))
    return stats


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--part', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--dtype', choices=['float32', 'bfloat16', 'float16'], default='float32')
    parser.add_argument(
        '--channels-last', action='store_true', help='channels-last model and images'
    )
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument(
        '--deploy', action='store_true', help='time the deploy-mode model (switch_to_deploy)'
    )
    parser.add_argument(
        '--compile',
        action='store_true',
        help='with --deploy: compile the backbones first (torch.compile); prints the compile time',
    )
    parser.add_argument(
        '--keep-freed-memory',
        action='store_true',
        help='let glibc keep freed feature maps for reuse (mmeffformer.utils.keep_freed_memory)',
    )
    parser.add_argument('--backend', choices=['onnxruntime', 'openvino', 'executorch', 'pytorch'])
    parser.add_argument(
        '--model',
        help='with --backend: the exported .onnx file, an INT8 .xml IR (openvino), an '
        'ExecuTorch .pte program (executorch) or an INT8 .pt2 program (pytorch)',
    )
    parser.add_argument(
        '--precision',
        choices=['default', 'fp32', 'bf16'],
        default='default',
        help="with --backend: the runtime's precision (openvino's default: bf16 on CPUs with "
        'AMX or AVX512-BF16)',
    )
    args = parser.parse_args(argv)
    if bool(args.backend) != bool(args.model):
        parser.error('--backend and --model go together (an exported file and its runtime)')
    if args.backend == 'pytorch' and not args.model.endswith('.pt2'):
        parser.error(f'--backend pytorch times a .pt2 of tools/quantize.py, got {args.model}')
    if args.backend != 'pytorch' and str(args.model).endswith('.pt2'):
        parser.error(f'a .pt2 program runs with --backend pytorch, got --backend {args.backend}')
    if args.backend == 'pytorch':
        return benchmark_program(args)
    if args.backend:
        return benchmark_exported(args)
    if args.compile and not args.deploy:
        parser.error('--compile needs --deploy (it compiles the deploy-mode backbones)')
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error('--keep-freed-memory: glibc mallopt is not available here')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda asked for, but no CUDA device is available')
    torch.set_num_threads(args.threads)
    model, scope = build_model(args.config, args.part)
    dtype = getattr(torch, args.dtype)
    model = model.to(device=args.device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    height, width = args.shape
    if args.deploy:
        # a dtype (or channels-last) makes the backbones compute in it; else the plain rewrite
        own_precision = dtype != torch.float32 or args.channels_last
        switch_to_deploy(
            model,
            sizes=[(height, width)],
            dtype=dtype if own_precision else None,
            compile=args.compile,
        )
    call = model_call(
        model, scope, args.part, args.batch, height, width, args.device, memory_format=layout
    )
    call = precision_call(call, args.device, dtype)
    stats = time_call(call, args.warmup, args.repeats)
    if args.compile:
        from mmeffformer.utils.compiling import compile_report

        print(f'compiled deploy mode: {compile_report()}')
    layout = 'channels-last' if args.channels_last else 'NCHW'
    mode = f'{"deploy" if args.deploy else "eval"} mode{", compiled" if args.compile else ""}'
    if args.keep_freed_memory:
        mode += ', glibc keeps freed memory'
    print(machine_line(args, f'{args.dtype}, {layout}', mode))
    print(timing_line(args, stats))
    return stats


if __name__ == '__main__':
    main()
