"""tools/train.py then tools/test.py on the demo configs, as written: a few iterations on
generated data, the saved checkpoint evaluated with the config's metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmeffformer.datasets.synthetic import write_dataset
from tests.helpers.scripts import run_tool

pytestmark = pytest.mark.compat
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo'


def run(tool: str, *args, cwd: Path) -> str:
    return run_tool(tool, *args, cwd=cwd).check().output


@pytest.mark.parametrize(
    'config, metrics',
    [
        ('semfpn_effformer_l1_synthetic.py', ('mIoU',)),
        ('maskrcnn_effformer_l1_synthetic.py', ('box/bbox_mAP', 'mask/segm_mAP')),
    ],
)
def test_train_then_test_a_demo_config(tmp_path, config, metrics):
    # the demo configs read data/synthetic relative to the working directory
    write_dataset(str(tmp_path / 'data' / 'synthetic'), num_train=2, num_val=1, size=(128, 128))
    work = tmp_path / 'work'
    loaders = ' '.join(
        f'{loader}.num_workers=0 {loader}.persistent_workers=False'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    )
    schedule = (
        'train_cfg.max_iters=2 train_cfg.val_interval=2 train_dataloader.batch_size=2 '
        'default_hooks.checkpoint.interval=2 default_hooks.logger.interval=1'
    ).split()
    trained = run(
        'train.py',
        DEMO / config,
        '--work-dir',
        work,
        '--cfg-options',
        *schedule,
        *loaders.split(),
        cwd=tmp_path,
    )
    assert 'Iter(train) [2/2]' in trained
    tested = run(
        'test.py',
        DEMO / config,
        work / 'iter_2.pth',
        '--work-dir',
        work,
        '--cfg-options',
        *loaders.split(),
        cwd=tmp_path,
    )
    for metric in metrics:
        (value,) = re.findall(rf'Iter\(test\).*{re.escape(metric)}: (\d+\.\d+)', tested)
        assert 0 <= float(value) <= 100, metric
