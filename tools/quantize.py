"""Quantize a trained detector or segmentor to INT8, calibrated on its own data.

Usage: python tools/quantize.py CONFIG CHECKPOINT --out OUT.xml [--backend openvino]
           [--onnx FILE] [--preset mixed|performance] [--shape H W]
           [--num-images 100] [--split train|val|test] [--seed 0] [--cfg-options ...]
           [--max-drop D [--metric KEY]]
       python tools/quantize.py CONFIG CHECKPOINT --out OUT.pt2 --backend pytorch
           [--num-images 100] [--split ...] [--seed 0] [--cfg-options ...]

Both draw ``--num-images`` images of the config's train set (by default: calibrating on
the images you evaluate on flatters the result) through its test-time pipeline and data
preprocessor.

``--backend openvino`` exports the deploy-mode model as ``tools/export_onnx.py --part
model --deploy`` does (or takes ``--onnx FILE``, such an export) and quantizes it with
NNCF's post-training quantization on its OpenVINO model. The attention-bias lookups stay
float (NNCF cannot quantize them), and so do NMS, RoIAlign and the box decoding.
``--max-drop D`` uses NNCF's quantization with accuracy control: the config's val metric
(``--metric``; mIoU for a segmentor, bbox_mAP for a detector, with any prefix) is computed on its
val set for the float and the INT8 model, and the operations that cost most of it go back
to float until INT8 is at most ``D`` points below float.

``--backend pytorch`` quantizes the deploy-mode backbone and neck with PT2E (torchao's X86
Inductor quantizer) and writes them, with the heads' float weights, into one ``.pt2``
program; the heads stay float32.

Either file keeps height and width free and carries the model's description, so
``tools/test.py CONFIG OUT.xml|OUT.pt2`` evaluates it with the config's evaluator and
refuses a file of another model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config, DictAction  # noqa: E402

import mmeffformer  # noqa: E402,F401

SUFFIXES = {'openvino': '.xml', 'pytorch': '.pt2'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the trained model (.pth)')
    parser.add_argument(
        '--out', required=True, help='the file to write: an OpenVINO IR (.xml) or a .pt2'
    )
    parser.add_argument('--backend', choices=sorted(SUFFIXES), default='openvino')
    parser.add_argument('--onnx', help='openvino: a file of tools/export_onnx.py --part model')
    parser.add_argument('--num-images', type=int, default=100, help='calibration images')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--preset', choices=['mixed', 'performance'], default='mixed')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0, help='which images calibrate')
    parser.add_argument(
        '--max-drop',
        type=float,
        help='openvino: the largest drop of the val metric, in points (mIoU, AP x 100), that '
        'INT8 may show; what costs more is kept float',
    )
    parser.add_argument(
        '--metric',
        help="with --max-drop: the val evaluator's metric (default mIoU / bbox_mAP)",
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings')
    args = parser.parse_args(argv)
    suffix = SUFFIXES[args.backend]
    if not args.out.endswith(suffix):
        parser.error(f'--out of --backend {args.backend} must end with {suffix}, got {args.out}')
    if args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    if args.onnx and args.backend != 'openvino':
        parser.error('--onnx is the file NNCF quantizes for --backend openvino')
    if args.max_drop is not None and args.backend != 'openvino':
        parser.error("--max-drop is NNCF's accuracy control, for --backend openvino")
    if args.max_drop is not None and args.max_drop < 0:
        parser.error(f'--max-drop is a drop in points, at least 0; got {args.max_drop}')
    if args.metric and args.max_drop is None:
        parser.error('--metric names the metric of --max-drop')
    if args.onnx and not args.onnx.endswith('.onnx'):
        parser.error(f'--onnx takes an .onnx file, got {args.onnx}')
    return args


def deployed_model(cfg, checkpoint: str, sizes=()):
    """The deploy-mode model of ``cfg`` with ``checkpoint``'s weights."""
    from mmengine.runner import load_checkpoint

    from mmeffformer.models import switch_to_deploy
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    model = build_model_from_cfg(cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return switch_to_deploy(model.eval(), sizes=sizes)


def quantize_for_openvino(cfg, args: argparse.Namespace) -> None:
    from mmeffformer.export import describe, export_onnx, exportable, read_metadata
    from mmeffformer.quantization import AccuracyControl, calibration_inputs, quantize_openvino
    from mmeffformer.runtimes import check_file_fits
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    scope = cfg.get('default_scope', 'mmdet')
    inputs = calibration_inputs(cfg, args.num_images, args.split, args.seed)
    accuracy = None
    if args.max_drop is not None:
        accuracy = AccuracyControl.from_config(cfg, args.max_drop, args.metric)
    with tempfile.TemporaryDirectory() as folder:
        onnx_file = args.onnx
        if not onnx_file:
            onnx_file = os.path.join(folder, 'model.onnx')
            model = deployed_model(cfg, args.checkpoint, sizes=[tuple(args.shape)])
            export_onnx(exportable(model, scope, 'model'), onnx_file, args.shape)
            print(f'exported the deploy-mode model (traced at {args.shape[0]}x{args.shape[1]})')
        else:  # someone else's export: it must be of the config's model
            expected = describe(exportable(build_model_from_cfg(cfg), scope, 'model'))
            check_file_fits(read_metadata(onnx_file), expected, onnx_file)
        print(f'calibrating on {len(inputs)} images of the {args.split} set')
        if accuracy:
            print(
                f'accuracy control: {accuracy.metric.metric} on the {len(accuracy.items)} images '
                f'of the val set may drop by at most {args.max_drop} points'
            )
        metadata = read_metadata(onnx_file)
        quantize_openvino(onnx_file, inputs, args.out, args.preset, metadata, accuracy)
    print(f'wrote {args.out} (INT8, OpenVINO IR; height and width free)')


def quantize_for_pytorch(cfg, args: argparse.Namespace) -> None:
    from mmeffformer.export import describe, exportable
    from mmeffformer.quantization import calibration_batches, quantize_pytorch
    from mmeffformer.quantization.pytorch_int8 import import_pt2e

    import_pt2e()  # a missing torchao is named before any work
    scope = cfg.get('default_scope', 'mmdet')
    model = deployed_model(cfg, args.checkpoint)
    images = [
        image for image, _ in calibration_batches(cfg, args.num_images, args.split, args.seed)
    ]
    print(f'calibrating on {len(images)} images of the {args.split} set')
    quantize_pytorch(model, images, args.out, describe(exportable(model, scope, 'model')))
    print(
        f'wrote {args.out} (backbone and neck INT8 by PT2E, heads float32; height and width free)'
    )


def main(argv=None) -> int:
    from mmeffformer.datasets.checks import check_data_roots

    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {args.checkpoint}')
    if not os.path.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.init_cfg = None  # the checkpoint has every weight
    loaders = [f'{args.split}_dataloader', 'test_dataloader']
    if args.max_drop is not None:
        loaders.append('val_dataloader')
    check_data_roots(cfg, loaders=tuple(loaders))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.backend == 'pytorch':
        quantize_for_pytorch(cfg, args)
    else:
        quantize_for_openvino(cfg, args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
