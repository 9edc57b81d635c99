"""Parameters and FLOPs of a config's backbone and whole model at an input size.

Usage: python tools/get_flops.py CONFIG [--shape H W] [--part backbone|model|both]

FLOPs are counted on the executed aten operators (torch's FlopCounterMode), so
two-stage detectors work too; a multiply-add counts 2 FLOPs (MACs = FLOPs / 2,
the unit of the EfficientFormer papers). RoIAlign and NMS are not counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmeffformer  # noqa: E402,F401
from mmeffformer.utils.model_analysis import build_model, count_flops, count_params, model_call  # noqa: E402


def measure(config: str, part: str, height: int, width: int) -> dict:
    model, scope = build_model(config, part)
    flops = count_flops(model_call(model, scope, part, 1, height, width, 'cpu'))
    return dict(part=part, params=count_params(model), flops=flops)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--part', choices=['backbone', 'model', 'both'], default='both')
    args = parser.parse_args(argv)
    parts = ['backbone', 'model'] if args.part == 'both' else [args.part]
    height, width = args.shape
    print(f'{args.config} at {height}x{width}')
    for part in parts:
        result = measure(args.config, part, height, width)
        print(
            f'  {part:8s} params {result["params"] / 1e6:8.3f} M   '
            f'FLOPs {result["flops"] / 1e9:9.2f} G   MACs {result["flops"] / 2e9:9.2f} G'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
