"""Train a detector or segmentor from a config (mmengine runner).

Usage: python tools/train.py CONFIG [--work-dir DIR] [--amp [--amp-dtype D]] [--resume [CKPT]]
                             [--compile] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmeffformer  # noqa: E402,F401  (registers modules, makes checkpoints loadable)
from mmeffformer.engine import amp_optim_wrapper  # noqa: E402
from mmeffformer.utils.cli import (  # noqa: E402
    add_common_arguments,
    amp_device_and_dtype,
    apply_amp_to_loops,
    load_config,
    parse,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with mmeffformer backbones')
    parser.add_argument('config', help='config file path')
    add_common_arguments(parser)
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir',
    )
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by batch size')
    parser.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the training step (mmengine's compile option; needs a C++ compiler)",
    )
    return parse(parser, argv)


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if args.amp:
        device, dtype = amp_device_and_dtype(args)
        cfg.optim_wrapper = amp_optim_wrapper(cfg.optim_wrapper, device, dtype)
        apply_amp_to_loops(cfg, args)
    if args.compile:
        from mmeffformer.utils.compiling import check_compiler_available

        check_compiler_available('--compile')  # fail now, not after the data and model are built
        cfg.compile = True
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> None:
    from mmeffformer.checkpoint.checks import check_pretrained_files
    from mmeffformer.datasets.checks import check_data_roots
    from mmeffformer.engine import distributed_run

    cfg = build_config(parse_args(argv))
    check_data_roots(cfg)
    check_pretrained_files(cfg)
    with distributed_run(cfg):
        Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
