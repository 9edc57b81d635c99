"""Let mmengine's distributed path (``--launcher pytorch``) run on CPU-only machines, and
end it cleanly."""

from __future__ import annotations

import contextlib
from typing import Iterator

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


@contextlib.contextmanager
def distributed_run(cfg: Config) -> Iterator[None]:
    """Set up a run as :func:`setup_cpu_distributed` does; when the run has finished, wait
    for every rank and destroy the process group.

    mmengine never destroys it. A rank that exits with its group alive tears gloo's
    threads down during interpreter shutdown, which sometimes aborts the process
    ("terminate called without an active exception", SIGABRT) after a run that
    succeeded, and torchrun then reports the whole job as failed.
    """
    setup_cpu_distributed(cfg)
    yield
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
