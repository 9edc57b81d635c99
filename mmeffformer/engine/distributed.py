"""Let mmengine's distributed path (``--launcher pytorch``) run on CPU-only machines."""

from __future__ import annotations

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> None:
    """On a machine without CUDA, start a gloo process group and use CPU DDP.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and wraps the model
    with ``device_ids=[local_rank]``; both fail without CUDA. Runner skips its
    own initialisation when a process group exists, and a ``model_wrapper_cfg``
    with ``device_ids=None`` gives CPU DistributedDataParallel.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
