"""Two CPU processes (gloo) train like one process with the same global batch."""

from __future__ import annotations

import hashlib
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from tests.helpers.downstream import build_from_config
from tests.helpers.http_server import CheckpointServer, unused_port
from tests.helpers.tiny_configs import write_config

ROOT = Path(__file__).resolve().parents[2]


def run_tool(command: list, env: dict) -> subprocess.CompletedProcess:
    """Run a tool; a failure shows the end of its stderr (the ranks' tracebacks)."""
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def test_two_process_ddp_matches_single_process(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=6, num_val=1, size=(128, 128))
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(unused_port()), OMP_NUM_THREADS='1')
    ddp_dir, single_dir = tmp_path / 'ddp', tmp_path / 'single'
    run_tool(
        ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(write_config(tmp_path, data, 1)), '2',
         '--work-dir', str(ddp_dir)],
        env,
    )  # fmt: skip
    run_tool(
        [sys.executable, str(ROOT / 'tools' / 'train.py'), str(write_config(tmp_path, data, 2)),
         '--work-dir', str(single_dir)],
        env,
    )  # fmt: skip
    ddp = torch.load(ddp_dir / 'iter_3.pth', weights_only=False)
    single = torch.load(single_dir / 'iter_3.pth', weights_only=False)
    assert ddp['meta']['iter'] == single['meta']['iter'] == 3
    # both runs logged three finite losses
    for run in (ddp, single):
        losses, counts = run['message_hub']['log_scalars']['train/loss'].data
        assert len(losses) == 3 and list(counts) == [1, 1, 1]
        assert all(math.isfinite(loss) for loss in losses)
    # the optimizer stepped: iterations 2 and 3 moved the weights saved after iteration 1
    after_first = torch.load(single_dir / 'iter_1.pth', weights_only=False)['state_dict']
    moved = [
        name
        for name, value in single['state_dict'].items()
        if value.is_floating_point() and not torch.allclose(value, after_first[name])
    ]
    assert len(moved) > len(single['state_dict']) // 2
    for name, value in single['state_dict'].items():
        torch.testing.assert_close(ddp['state_dict'][name], value, atol=1e-5, rtol=1e-5, msg=name)


def test_two_ranks_download_a_url_checkpoint_once(tmp_path):
    """Both ranks of tools/dist_train.sh start from a URL; the server sees one request."""
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=2, num_val=1, size=(128, 128))
    config = write_config(tmp_path, data, 1)
    cfg = Config.fromfile(str(config))
    segmentor = build_from_config(cfg, 'mmseg')
    contents = io.BytesIO()
    torch.save({'state_dict': segmentor.state_dict()}, contents)  # a whole-model file
    payload = contents.getvalue()
    name = f'/segmentor-{hashlib.sha256(payload).hexdigest()[:8]}.pth'
    with CheckpointServer() as server:
        server.files[name] = payload
        url = server.url(name)
        config.write_text(
            config.read_text()
            + f"model['backbone']['init_cfg'] = dict(_delete_=True, type='Pretrained', checkpoint='{url}')\n"
        )
        env = dict(
            os.environ, PYTHON=sys.executable, PORT=str(unused_port()), OMP_NUM_THREADS='1',
            MMEFFFORMER_CACHE=str(tmp_path / 'cache'),
        )  # fmt: skip
        run = run_tool(
            ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2',
             '--work-dir', str(tmp_path / 'ddp')],
            env,
        )  # fmt: skip
        assert server.requests[name] == 1
    assert (tmp_path / 'ddp' / 'iter_3.pth').is_file()
    assert f'Loaded {url}' in run.stdout + run.stderr
