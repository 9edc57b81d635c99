"""Export a config's backbone or whole model to ONNX, with dynamic height and width, and check it.

Usage: python tools/export_onnx.py CONFIG OUT.onnx [--checkpoint CKPT]
           [--part backbone|model] [--shape H W] [--deploy] [--opset 17]
           [--dynamic-batch] [--no-verify] [--tolerance 1e-3] [--score-thr 0.3]

--part model writes the whole model: a segmentor's class logits at the input
size, or a detector's detections with RPN, NMS and RoIAlign inside the graph
(one image per call). Height and width are free in the file; --shape is the
example size of the trace. Unless --no-verify, the file is run with ONNX
Runtime and PyTorch on random images at --shape and at a second, non-square
size that is not a multiple of 32; the largest differences are printed and the
tool exits with status 1 when one exceeds --tolerance (relative to the output's
scale; for detectors, detections with score >= --score-thr are compared).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmeffformer  # noqa: E402,F401
from mmeffformer.export import (  # noqa: E402
    DEFAULT_OPSET,
    export_onnx,
    exportable,
    report,
    second_size,
    verify_file,
)
from mmeffformer.utils.model_analysis import build_model  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--checkpoint', help='weights to load (random weights without it)')
    parser.add_argument('--part', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--deploy', action='store_true', help='export the deploy-mode model')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--dynamic-batch', action='store_true')
    parser.add_argument('--no-verify', action='store_true')
    parser.add_argument('--tolerance', type=float, default=1e-3)
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='detections compared by the check'
    )
    args = parser.parse_args(argv)
    if min(args.shape) < 1:
        parser.error(f'--shape must be two positive sizes, got {args.shape}')
    if not args.out.endswith('.onnx'):
        parser.error(f'OUT must end with .onnx, got {args.out}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    model, scope = build_model(args.config, args.part)
    if args.checkpoint and args.part == 'model':
        from mmengine.runner import load_checkpoint

        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    elif args.checkpoint:  # a backbone file in any layout we read
        from mmeffformer.checkpoint.loading import load_pretrained_backbone

        load_pretrained_backbone(model, args.checkpoint, family=model.family)
    size = tuple(args.shape)
    if args.deploy:
        from mmeffformer.models import switch_to_deploy

        switch_to_deploy(model, sizes=[size])
    module = exportable(model, scope, args.part)
    names = export_onnx(module, args.out, size, opset=args.opset, dynamic_batch=args.dynamic_batch)
    print(
        f'wrote {args.out} (opset {args.opset}, outputs {", ".join(names)}; height and width free)'
    )
    if args.no_verify:
        return 0
    batch = 2 if args.dynamic_batch else 1
    sizes = [size, second_size(size)]
    results = verify_file(module, args.out, sizes, names, batch=batch, score_thr=args.score_thr)
    return report(results, f'ONNX Runtime vs PyTorch (batch {batch}):', args.tolerance)


if __name__ == '__main__':
    sys.exit(main())
