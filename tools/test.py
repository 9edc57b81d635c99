"""Evaluate a checkpoint or an exported model: COCO box / mask AP (mmdet) or mIoU (mmseg).

Usage: python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                            [--show-dir DIR] [--deploy [--deploy-dtype D] [--compile]] [--amp]
                            [--cfg-options k=v ...]
                            [--launcher ...]
       python tools/test.py CONFIG MODEL.onnx --backend onnxruntime|openvino
                            [--precision default|fp32|bf16] [--device cpu|cuda]
                            [--out ...] [--show-dir ...] [--cfg-options ...]
       python tools/test.py CONFIG MODEL.xml [--backend openvino] [...]
       python tools/test.py CONFIG MODEL.pt2 [--backend pytorch] [...]
       python tools/test.py CONFIG MODEL.pte [--backend executorch] [...]

The evaluator is the config's (mmdet's CocoMetric, mmseg's IoUMetric); progress
is logged every few iterations. A checkpoint converted from the authors' files
with tools/convert_weights.py loads here like any other. A file written by
tools/export_onnx.py --part model runs in the chosen runtime on the config's
test data and metric, and so does the INT8 OpenVINO IR of tools/quantize.py
(MODEL.xml) and its PyTorch INT8 program (MODEL.pt2: the quantized backbone and
neck compiled by Inductor, the heads in float32), and the ExecuTorch program of
tools/export_executorch.py --part model (MODEL.pte, XNNPACK, fp32 or INT8); a file
exported from another model than the config's is refused before evaluation. An exported
file runs in its own precision: where the config's test loop autocasts (a model trained
in bf16), mmengine's plain TestLoop replaces it, so what runs around the file in PyTorch
(heads, post-processing) stays float32.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.utils.cli import add_common_arguments, apply_amp_to_loops, load_config, parse  # noqa: E402

#: each kind of exported file: what it is called and the backends that run it, default first
FILE_BACKENDS = {
    '.onnx': ('an ONNX file', ('onnxruntime', 'openvino')),
    '.xml': ('an OpenVINO .xml IR', ('openvino',)),
    '.pt2': ('a .pt2 INT8 program', ('pytorch',)),
    '.pte': ('an ExecuTorch .pte program', ('executorch',)),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a detector or segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file or http(s) URL')
    add_common_arguments(parser)
    parser.add_argument('--out', help='dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='draw predictions into this folder')
    parser.add_argument(
        '--deploy',
        action='store_true',
        help='evaluate the deploy-mode model (BN / layer scales folded, fused ops)',
    )
    parser.add_argument(
        '--deploy-dtype',
        choices=['bfloat16', 'float16', 'float32'],
        help='with --deploy: the backbone computes in this dtype, channels-last',
    )
    parser.add_argument(
        '--compile',
        action='store_true',
        help='with --deploy: compile the backbones (torch.compile, one graph per input size)',
    )
    parser.add_argument(
        '--backend',
        choices=['onnxruntime', 'openvino', 'pytorch', 'executorch'],
        help='runtime of an exported model: onnxruntime (.onnx, the default), openvino '
        '(.onnx or .xml), pytorch (.pt2 of tools/quantize.py --backend pytorch) or executorch '
        '(.pte of tools/export_executorch.py)',
    )
    parser.add_argument(
        '--precision',
        choices=['default', 'fp32', 'bf16'],
        default='default',
        help="the runtime's precision (openvino's default is bf16 on CPUs with AMX or AVX512-BF16)",
    )
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    args = parse(parser, argv)
    suffix = Path(args.checkpoint).suffix
    if args.backend and suffix not in FILE_BACKENDS:
        parser.error(
            f'--backend runs an exported .onnx model, an OpenVINO .xml IR, a .pt2 INT8 '
            f'program or an ExecuTorch .pte program, got {args.checkpoint}'
        )
    if suffix in FILE_BACKENDS and (args.deploy or args.amp):
        parser.error('--deploy / --amp apply to PyTorch checkpoints, not to an exported model')
    if suffix in FILE_BACKENDS:
        kind, accepted = FILE_BACKENDS[suffix]
        if args.backend not in (None, *accepted):
            parser.error(f'{kind} runs with --backend {" or ".join(accepted)}, got {args.backend}')
        args.backend = args.backend or accepted[0]
    args.notes = []  # what building the config changed, logged once the runner's logger exists
    return args


def use_exported_model(cfg: Config, args: argparse.Namespace) -> None:
    """``cfg.model`` becomes the exported file in its runtime, after checking it fits (a
    ``.pt2`` replaces the backbone and neck of the config's model once it is built)."""
    from mmeffformer.engine import loop_autocasts
    from mmeffformer.export import describe, exportable, read_metadata
    from mmeffformer.runtimes import check_file_fits, exported_model_cfg
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    scope = cfg.get('default_scope', 'mmdet')
    expected = describe(exportable(build_model_from_cfg(cfg), scope, 'model'))
    if args.backend == 'pytorch':
        from mmeffformer.quantization import read_pt2_description

        check_file_fits(read_pt2_description(args.checkpoint), expected, args.checkpoint)
    else:
        check_file_fits(read_metadata(args.checkpoint), expected, args.checkpoint)
        runtime = dict(backend=args.backend, precision=args.precision, device=args.device)
        cfg.model = exported_model_cfg(cfg.model, scope, args.checkpoint, **runtime)
    cfg.load_from = None
    if loop_autocasts(cfg.get('test_cfg')):
        # the file fixes its own precision; the config's autocast loop (a model trained in
        # bf16) would only round what runs around it in PyTorch (heads, post-processing)
        cfg.test_cfg = dict(type='TestLoop')
        args.notes.append(
            f"{args.checkpoint} is evaluated without the config's autocast test loop: what "
            'runs around it in PyTorch runs in float32'
        )


def build_config(args: argparse.Namespace) -> Config:
    if args.checkpoint.startswith(('http://', 'https://')):
        from mmeffformer.checkpoint import download_checkpoint

        args.checkpoint = str(download_checkpoint(args.checkpoint))  # once, into the cache
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    apply_amp_to_loops(cfg, args)
    # the backbone's own pretrained file is not needed: the checkpoint has everything
    cfg.model.backbone.init_cfg = None
    if args.backend:
        use_exported_model(cfg, args)
    detection = cfg.get('default_scope') == 'mmdet'
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        dump = dict(type='DumpDetResults' if detection else 'DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, list) else [evaluator]) + [
            dump
        ]
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        if detection:
            hook.test_out_dir = osp.abspath(args.show_dir)
        else:
            cfg.visualizer.save_dir = osp.abspath(args.show_dir)
            hook.interval = 1
    return cfg


def main(argv=None) -> dict:
    from mmeffformer.datasets.checks import check_data_roots
    from mmeffformer.engine import distributed_run

    args = parse_args(argv)
    if args.deploy_dtype and not args.deploy:
        raise ValueError('--deploy-dtype needs --deploy')
    if args.compile and not args.deploy:
        raise ValueError('--compile needs --deploy (it compiles the deploy-mode backbones)')
    cfg = build_config(args)
    check_data_roots(cfg, loaders=('test_dataloader',))
    with distributed_run(cfg):
        return run_test(cfg, args)


def run_test(cfg: Config, args: argparse.Namespace) -> dict:
    """Build the runner and test (the checkpoint, its deploy mode or an exported file)."""
    from mmeffformer.checkpoint.checks import check_checkpoint_matches

    runner = Runner.from_cfg(cfg)
    for note in args.notes:
        runner.logger.info(note)
    if args.backend == 'pytorch':
        from mmeffformer.quantization import use_quantized_features

        use_quantized_features(runner.model, args.checkpoint)
        runner.logger.info(
            f'INT8 program {args.checkpoint}: backbone and neck quantized (PT2E, compiled by '
            'Inductor), heads float32'
        )
        return runner.test()
    if args.backend:
        runner.logger.info(f'exported model {args.checkpoint} in {runner.model.runtime.describe()}')
        return runner.test()
    check_checkpoint_matches(runner.model, cfg.load_from)
    if args.deploy:
        from torch.nn.modules.batchnorm import _BatchNorm

        from mmeffformer.models import switch_to_deploy

        runner.load_or_resume()  # rewrite the loaded weights; test() will not load again
        dtype = getattr(torch, args.deploy_dtype) if args.deploy_dtype else None
        switch_to_deploy(runner.model, dtype=dtype, compile=args.compile)
        runner.logger.info(f'deploy mode, backbone dtype {dtype or "as loaded"}')
        left = sum(isinstance(m, _BatchNorm) for m in runner.model.backbone.modules())
        runner.logger.info(f'deploy mode: {left} BatchNorm layers left in the backbone')
    metrics = runner.test()
    if args.compile:
        from mmeffformer.utils.compiling import compile_report

        # each input size compiles once, on its first batch
        runner.logger.info(f'compiled deploy mode: {compile_report()}')
    return metrics


if __name__ == '__main__':
    main()
