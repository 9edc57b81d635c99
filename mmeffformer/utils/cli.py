"""What tools/train.py and tools/test.py share: common arguments and config loading."""

from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmeffformer.engine.amp import check_amp
from mmeffformer.engine.optimizers import unfuse_where_unsupported, warn_if_bf16_is_emulated
from mmeffformer.utils.runtime_settings import flush_denormals, keep_freed_memory


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher``, its ``--local-rank``,
    ``--amp`` / ``--amp-dtype``, ``--default-malloc`` and ``--keep-denormals``."""
    parser.add_argument('--work-dir', help='where logs, metrics and checkpoints go')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: bf16 autocast on CPU, AmpOptimWrapper on CUDA (see --amp-dtype)',
    )
    parser.add_argument(
        '--amp-dtype',
        choices=['bfloat16', 'float16'],
        default=None,
        help='reduced dtype of --amp (default: float16 on CUDA, bfloat16 on CPU)',
    )
    parser.add_argument(
        '--default-malloc',
        action='store_true',
        help="keep glibc's default of unmapping freed feature maps (slower: docs/benchmarks.md)",
    )
    parser.add_argument(
        '--keep-denormals',
        action='store_true',
        help='compute with denormal floats instead of flushing them to zero (slower on x86)',
    )


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not args.default_malloc:
        # The tools own their process: reusing freed memory made CPU steps ~17-50% faster.
        keep_freed_memory()
    if not args.keep_denormals:
        # Fresh heads' gradients are full of denormals, which x86 computes in microcode.
        flush_denormals()
    return args


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options``, the launcher and the work dir applied."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    unfuse_where_unsupported(cfg)
    return cfg


def amp_device_and_dtype(args: argparse.Namespace) -> tuple:
    """``(device, dtype name)`` of ``--amp``: CUDA when available, else CPU bfloat16."""
    import torch

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dtype = args.amp_dtype or ('float16' if device == 'cuda' else 'bfloat16')
    check_amp(device, dtype)
    return device, dtype


def apply_amp_to_loops(cfg: Config, args: argparse.Namespace) -> None:
    """``--amp`` for evaluation: val / test loops under autocast (bf16 on CPU)."""
    if not args.amp:
        return
    device, dtype = amp_device_and_dtype(args)
    if device == 'cpu':
        warn_if_bf16_is_emulated()
    elif dtype == 'bfloat16':
        import torch

        torch.set_autocast_gpu_dtype(torch.bfloat16)  # mmengine's autocast takes the default
    # mmengine's fp16 loops, returning float32 predictions to the metrics
    # (see mmeffformer/engine/runner/autocast_loops.py)
    loops = dict(val_cfg='mmeffformer.AutocastValLoop', test_cfg='mmeffformer.AutocastTestLoop')
    for name, loop in loops.items():
        if cfg.get(name) is not None:
            cfg[name] = dict(type=loop, fp16=True)
