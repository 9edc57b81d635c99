"""A distributed run ends by destroying its process group: a rank that exits with the group
alive can abort in interpreter shutdown after a successful run."""

from __future__ import annotations

import pytest
import torch.distributed as dist
from mmengine.config import Config

from mmeffformer.engine import distributed_run
from tests.helpers.http_server import unused_port


def test_the_process_group_lives_for_the_run_and_is_destroyed_after(monkeypatch):
    for name, value in dict(
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(unused_port()), RANK='0', WORLD_SIZE='1'
    ).items():
        monkeypatch.setenv(name, value)
    cfg = Config(dict(launcher='pytorch'))
    with distributed_run(cfg):
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
        assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None)
    assert not dist.is_initialized()


def test_a_failed_run_raises_and_a_single_process_run_starts_no_group():
    with pytest.raises(RuntimeError, match='boom'), distributed_run(Config(dict(launcher='none'))):
        assert not dist.is_initialized()
        raise RuntimeError('boom')
