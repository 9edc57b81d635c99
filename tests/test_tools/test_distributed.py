"""Two CPU processes (gloo) download a URL checkpoint once and train like one process
with the same global batch."""

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


def test_two_processes_from_a_url_download_once_and_match_one_process(tmp_path):
    """Both ranks of tools/dist_train.sh start from a URL (the server sees one request) and
    end with the weights of one process with the same global batch."""
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=6, num_val=1, size=(128, 128))
    configs = {batch: write_config(tmp_path, data, batch) for batch in (1, 2)}
    segmentor = build_from_config(Config.fromfile(str(configs[1])), 'mmseg')
    contents = io.BytesIO()
    torch.save({'state_dict': segmentor.state_dict()}, contents)  # a whole-model file
    payload = contents.getvalue()
    name = f'/segmentor-{hashlib.sha256(payload).hexdigest()[:8]}.pth'
    env = dict(
        os.environ, PYTHON=sys.executable, PORT=str(unused_port()), OMP_NUM_THREADS='1',
        MMEFFFORMER_CACHE=str(tmp_path / 'cache'),
    )  # fmt: skip
    ddp_dir, single_dir = tmp_path / 'ddp', tmp_path / 'single'
    with CheckpointServer() as server:
        server.files[name] = payload
        url = server.url(name)
        for config in configs.values():
            config.write_text(
                config.read_text()
                + f"model['backbone']['init_cfg'] = dict(_delete_=True, type='Pretrained', "
                f"checkpoint='{url}')\n"
            )
        run = run_tool(
            ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(configs[1]), '2',
             '--work-dir', str(ddp_dir)],
            env,
        )  # fmt: skip
        assert server.requests[name] == 1
        assert f'Loaded {url}' in run.stdout + run.stderr
        run_tool(
            [sys.executable, str(ROOT / 'tools' / 'train.py'), str(configs[2]),
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
