"""``fused=True`` optimizers on a torch that has no fused CPU kernels."""

from __future__ import annotations

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from mmeffformer.utils.torch_features import torch_at_least

#: the first torch with fused Adam / AdamW / SGD kernels for CPU tensors
FUSED_CPU_MIN_TORCH = '2.4'


def unfuse_where_unsupported(cfg: Config) -> None:
    """Run a config's ``fused=True`` optimizer unfused where torch has no fused CPU kernel
    (torch < 2.4 on a machine without CUDA), which refuses to build it otherwise.

    The fused kernel is one implementation of the same update; unfused gives the same
    weights up to float rounding, one kernel per step slower. Logged once.
    """
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    if not optimizer.get('fused') or torch.cuda.is_available():
        return
    if torch_at_least(FUSED_CPU_MIN_TORCH):
        return
    optimizer['fused'] = False
    print_log(
        f'fused={True} optimizer: torch {torch.__version__} has fused kernels for CUDA only '
        f'(CPU from torch {FUSED_CPU_MIN_TORCH}); running the same update unfused',
        logger='current',
    )
