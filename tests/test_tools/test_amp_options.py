"""tools/train.py and tools/test.py with --amp on CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from mmeffformer.datasets.synthetic import write_dataset
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import write_config

ROOT = Path(__file__).resolve().parents[2]


def test_train_and_test_tools_run_with_amp_on_cpu(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=2, num_val=1, size=(128, 128))
    config = write_config(tmp_path, data, 1)
    work = tmp_path / 'work'
    run = run_tool('train.py', str(config), '--amp', '--work-dir', str(work))
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = torch.load(work / 'iter_3.pth', weights_only=False)
    assert 'mmeffformer.CPUAutocastOptimWrapper' in checkpoint['meta']['cfg']
    test = run_tool(
        'test.py',
        str(config),
        str(work / 'iter_3.pth'),
        '--amp',
        '--work-dir',
        str(tmp_path / 'test'),
    )
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'mIoU' in test.stdout + test.stderr
    refused = run_tool(
        'train.py', str(config), '--amp', '--amp-dtype', 'float16', '--work-dir', str(work)
    )
    assert (
        refused.returncode != 0 and '--amp-dtype float16 is not supported on CPU' in refused.stderr
    )
