"""Export a config's backbone, segmentor or detector to an ExecuTorch program (XNNPACK); check it.

Usage: python tools/export_executorch.py CONFIG OUT.pte [--part backbone|model]
           [--checkpoint CKPT] [--max-shape 1024 1024] [--shape H W]
           [--int8 [--num-images 32] [--split train] [--seed 0]] [--tolerance 1e-3]
           [--score-thr 0.3] [--no-verify] [--cfg-options ...]

The deploy-mode model goes through ``torch.export`` with height and width free from 96 up
to ``--max-shape`` (ExecuTorch plans memory for the largest input: one file serves every
size up to the bound, and the runtime refuses larger images) and is lowered to XNNPACK, the
CPU backend of ExecuTorch on Android, iOS and desktop. ``--part model`` puts a whole
segmentor in the program (image -> class logits at the input size), or a detector's networks
(backbone, neck and dense head; each R-CNN box and mask head as a method of its own), whose
anchors, box decoding, NMS and RoIAlign the runtime does in PyTorch
(``mmeffformer.runtimes.program_detector``). ``--int8`` quantizes it first with XNNPACK's
PT2E quantizer (INT8 activations, per-channel INT8 weights; a detector's backbone and neck,
its heads staying fp32), calibrated on ``--num-images`` images of the config's train set
drawn through its test pipeline and data preprocessor, as ``tools/quantize.py`` calibrates.

Unless ``--no-verify``, the program runs in the ExecuTorch runtime beside PyTorch (the
model it was made from) on random images at ``--shape`` and at a second, non-square size
that is not a multiple of 32; the largest differences are printed and the tool exits with
status 1 when one exceeds ``--tolerance`` (relative to the output's scale; for ``--int8``
the INT8 program is compared with the float model, so give it a tolerance of that size; for
detectors, the detections with score >= ``--score-thr`` are compared, and for INT8
detectors the networks' outputs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config, DictAction  # noqa: E402

import mmeffformer  # noqa: E402,F401


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('out', help='the .pte file to write')
    parser.add_argument('--part', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--checkpoint', help='weights to load (random weights without it)')
    parser.add_argument(
        '--max-shape', type=int, nargs=2, default=[1024, 1024], metavar=('H', 'W'),
        help='the largest height and width the program serves',
    )  # fmt: skip
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='the example size of the export and the first size checked (default: 512 512, '
        'or the bound if smaller)',
    )  # fmt: skip
    parser.add_argument('--int8', action='store_true', help='quantize to INT8 (XNNPACK, PT2E)')
    parser.add_argument('--num-images', type=int, default=32, help='--int8: calibration images')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--seed', type=int, default=0, help='which images calibrate')
    parser.add_argument('--tolerance', type=float, default=1e-3)
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='detections compared by the check'
    )
    parser.add_argument('--no-verify', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings')
    args = parser.parse_args(argv)
    from mmeffformer.export.executorch_export import MIN_SIDE

    if not args.out.endswith('.pte'):
        parser.error(f'OUT must end with .pte, got {args.out}')
    if min(args.max_shape) < MIN_SIDE:
        parser.error(f'--max-shape must be at least {MIN_SIDE} on each side, got {args.max_shape}')
    args.shape = args.shape or [min(512, bound) for bound in args.max_shape]
    if any(not MIN_SIDE <= s <= b for s, b in zip(args.shape, args.max_shape)):
        parser.error(
            f'--shape {args.shape[0]} {args.shape[1]} must lie between {MIN_SIDE} and the bound '
            f'--max-shape {args.max_shape[0]} {args.max_shape[1]}'
        )
    if args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    return args


def build(cfg: Config, args: argparse.Namespace):
    """The deploy-mode backbone or model of ``cfg``, with the checkpoint's weights."""
    from mmeffformer.models import switch_to_deploy
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    model = build_model_from_cfg(cfg, args.part)
    if args.checkpoint and args.part == 'model':
        from mmengine.runner import load_checkpoint

        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True, logger='silent')
    elif args.checkpoint:  # a backbone file in any layout we read
        from mmeffformer.checkpoint.loading import load_pretrained_backbone

        load_pretrained_backbone(model, args.checkpoint, family=model.family)
    return switch_to_deploy(model.eval())


def main(argv=None) -> int:
    from mmeffformer.export import (
        exportable,
        output_names,
        report,
        second_size,
        verify_file,
    )
    from mmeffformer.export.executorch_export import export_program, import_executorch

    args = parse_args(argv)
    import_executorch()  # a missing package is named before any work
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {args.checkpoint}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.init_cfg = None  # weights come from --checkpoint (or stay random)
    scope = cfg.get('default_scope', 'mmdet')
    module = exportable(build(cfg, args), scope, args.part).eval()
    images = None
    if args.int8:
        import torch

        from mmeffformer.datasets.checks import check_data_roots
        from mmeffformer.quantization.calibration import calibration_inputs

        check_data_roots(cfg, loaders=(f'{args.split}_dataloader', 'test_dataloader'))
        inputs = calibration_inputs(cfg, args.num_images, args.split, args.seed)
        images = [torch.from_numpy(array) for array in inputs]
        print(f'calibrating on {len(images)} images of the {args.split} set')
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    bound = tuple(args.max_shape)
    metadata = export_program(module, args.out, tuple(args.shape), bound, cfg, images)
    names = output_names(module)
    print(
        f'wrote {args.out} ({metadata["precision"]}, XNNPACK; outputs {", ".join(names)}; '
        f'height and width from 96 up to {bound[0]}x{bound[1]})'
    )
    if args.no_verify:
        return 0
    # the second size: non-square, no side a multiple of 32, within the bound
    second = [min(side, limit) for side, limit in zip(second_size(tuple(args.shape)), bound)]
    second = [side - 5 if side % 32 == 0 else side for side in second]
    sizes = [tuple(args.shape), tuple(second)]
    results = verify_file(
        module, args.out, sizes, names, backend='executorch', score_thr=args.score_thr
    )
    return report(results, 'ExecuTorch vs PyTorch:', args.tolerance)


if __name__ == '__main__':
    sys.exit(main())
