"""Quantize a trained detector or segmentor to INT8 for OpenVINO, calibrated on its own data.

Usage: python tools/quantize.py CONFIG CHECKPOINT --out OUT.xml [--backend openvino]
           [--onnx FILE] [--num-images 100] [--split train|val] [--preset mixed|performance]
           [--shape H W] [--seed 0] [--cfg-options ...]

Exports the deploy-mode model as ``tools/export_onnx.py --part model --deploy`` does (or
takes ``--onnx FILE``, such an export), draws ``--num-images`` images of the config's train
set (by default: calibrating on the images you evaluate on flatters the result) through its
test-time pipeline and data preprocessor, and quantizes the file with NNCF's post-training
quantization on its OpenVINO model. The attention-bias lookups stay float (NNCF cannot
quantize them), and so do NMS, RoIAlign and the box decoding. The IR keeps height and width
free and the file's metadata, so ``tools/test.py CONFIG OUT.xml --backend openvino``
evaluates it with the config's evaluator and refuses an IR of another model.
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the trained model (.pth)')
    parser.add_argument('--out', required=True, help='the OpenVINO IR to write (.xml, .bin beside)')
    parser.add_argument('--backend', choices=['openvino'], default='openvino')
    parser.add_argument('--onnx', help='a file of tools/export_onnx.py --part model to quantize')
    parser.add_argument('--num-images', type=int, default=100, help='calibration images')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--preset', choices=['mixed', 'performance'], default='mixed')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0, help='which images calibrate')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings')
    args = parser.parse_args(argv)
    if not args.out.endswith('.xml'):
        parser.error(f'--out is an OpenVINO IR and must end with .xml, got {args.out}')
    if args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    if args.onnx and not args.onnx.endswith('.onnx'):
        parser.error(f'--onnx takes an .onnx file, got {args.onnx}')
    return args


def export_deployed(cfg, checkpoint: str, path: str, size) -> None:
    """The deploy-mode whole model of ``cfg`` with ``checkpoint``'s weights, to ONNX."""
    from mmengine.runner import load_checkpoint

    from mmeffformer.export import export_onnx, exportable
    from mmeffformer.models import switch_to_deploy
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    model = build_model_from_cfg(cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    switch_to_deploy(model, sizes=[tuple(size)])
    export_onnx(exportable(model, cfg.get('default_scope', 'mmdet'), 'model'), path, size)


def main(argv=None) -> int:
    from mmeffformer.datasets.checks import check_data_roots
    from mmeffformer.export import describe, exportable, read_metadata
    from mmeffformer.quantization import calibration_inputs, quantize_openvino
    from mmeffformer.runtimes import check_file_fits
    from mmeffformer.utils.model_analysis import build_model_from_cfg

    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file not found: {args.checkpoint}')
    if not os.path.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.init_cfg = None  # the checkpoint has every weight
    check_data_roots(cfg, loaders=(f'{args.split}_dataloader', 'test_dataloader'))
    scope = cfg.get('default_scope', 'mmdet')
    with tempfile.TemporaryDirectory() as folder:
        onnx_file = args.onnx or os.path.join(folder, 'model.onnx')
        if not args.onnx:
            export_deployed(cfg, args.checkpoint, onnx_file, args.shape)
            print(f'exported the deploy-mode model (traced at {args.shape[0]}x{args.shape[1]})')
        metadata = read_metadata(onnx_file)
        expected = describe(exportable(build_model_from_cfg(cfg), scope, 'model'))
        check_file_fits(metadata, expected, onnx_file)
        inputs = calibration_inputs(cfg, onnx_file, args.num_images, args.split, args.seed)
        print(f'calibrating on {len(inputs)} images of the {args.split} set')
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        quantize_openvino(onnx_file, inputs, args.out, args.preset, metadata)
    print(f'wrote {args.out} (INT8, OpenVINO IR; height and width free)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
