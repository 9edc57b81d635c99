"""Reliability: resume after a kill, clear errors on bad inputs, atomic checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import mmeffformer  # noqa: F401
from mmeffformer.datasets.checks import check_data_roots
from mmeffformer.datasets.synthetic import write_dataset
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('data')
    write_dataset(str(root), num_train=8, num_val=2, size=(128, 128))
    return root


def scalars(work_dir: Path) -> dict:
    """Loss per iteration from mmengine's scalars.json files."""
    losses = {}
    for path in work_dir.glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                losses[record['iter']] = record['loss']
    return losses


def train(config: Path, work_dir: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        str(ROOT / 'tools' / 'train.py'),
        str(config),
        '--work-dir',
        str(work_dir),
        *extra,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_same_result(tmp_path, data):
    config = write_config(tmp_path, data, 2)
    text = (
        config.read_text().replace('max_iters=3', 'max_iters=6').replace('interval=1', 'interval=2')
    )
    config.write_text(text + '\ndefault_hooks.update(logger=dict(interval=1))\n')
    whole, broken = tmp_path / 'whole', tmp_path / 'broken'
    assert train(config, whole).wait() == 0

    process = train(config, broken)
    deadline = time.time() + 300
    while (
        not (broken / 'iter_2.pth').exists() and process.poll() is None and time.time() < deadline
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (broken / 'iter_2.pth').exists() and not (broken / 'iter_6.pth').exists()
    assert train(config, broken, '--resume').wait() == 0

    final = {
        name: torch.load(d / 'iter_6.pth', weights_only=False)
        for name, d in (('a', whole), ('b', broken))
    }
    assert final['a']['meta']['iter'] == final['b']['meta']['iter'] == 6
    for key, value in final['a']['state_dict'].items():
        torch.testing.assert_close(
            final['b']['state_dict'][key], value, atol=1e-5, rtol=1e-4, msg=key
        )
    a, b = scalars(whole), scalars(broken)
    assert sorted(a) == list(range(1, 7)) and set(b) >= {5, 6}
    for step in (5, 6):  # iterations run after the resume
        assert b[step] == pytest.approx(a[step], rel=1e-3, abs=1e-4)


def coco_config(data: Path) -> Config:
    cfg = Config.fromfile(str(ROOT / 'configs' / 'demo' / 'maskrcnn_effformer_l1_synthetic.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = f'{data}/coco/'
    return cfg


def rewrite_annotations(data: Path, tmp_path: Path, edit) -> Config:
    coco = json.loads((data / 'coco' / 'annotations' / 'instances_train2017.json').read_text())
    bad = tmp_path / 'coco'
    (bad / 'annotations').mkdir(parents=True)
    (bad / 'train2017').symlink_to(data / 'coco' / 'train2017')
    content = edit(coco)
    (bad / 'annotations' / 'instances_train2017.json').write_text(
        content if isinstance(content, str) else json.dumps(content)
    )
    cfg = coco_config(data)
    cfg.train_dataloader.dataset.data_root = f'{bad}/'
    return cfg


def test_missing_data_root_is_named(tmp_path, data):
    cfg = coco_config(data)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        check_data_roots(cfg)


def test_annotation_file_that_is_not_json(tmp_path, data):
    cfg = rewrite_annotations(data, tmp_path, lambda coco: 'this is not json')
    with pytest.raises(ValueError, match=r'instances_train2017.json.* is not valid JSON'):
        check_data_roots(cfg)


def test_unknown_category_id(tmp_path, data):
    def edit(coco):
        coco['annotations'][0]['category_id'] = 42
        return coco

    cfg = rewrite_annotations(data, tmp_path, edit)
    with pytest.raises(ValueError, match=r'category_id 42, not one of the categories \[1, 2, 3\]'):
        check_data_roots(cfg)


def test_empty_image_list(tmp_path, data):
    cfg = rewrite_annotations(data, tmp_path, lambda coco: dict(coco, images=[], annotations=[]))
    with pytest.raises(ValueError, match='lists no images'):
        check_data_roots(cfg)


def test_train_tool_names_a_corrupt_training_image(tmp_path, data):
    copy = tmp_path / 'data'
    shutil.copytree(data / 'ade', copy / 'ade')
    images = sorted((copy / 'ade' / 'images' / 'training').iterdir())
    images[1].write_bytes(b'not an image at all')
    config = write_config(tmp_path, copy, 2)
    run = run_tool('train.py', str(config), '--work-dir', str(tmp_path / 'work'))
    assert run.returncode != 0
    assert images[1].name in run.stderr, run.stderr[-3000:]


def test_checkpoint_for_the_wrong_arch_is_refused_by_test_tool(tmp_path, data):
    from tests.helpers.downstream import build_from_config
    from tests.helpers.tiny_configs import tiny_demo_config

    config = tiny_demo_config(tmp_path, data)
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.arch = dict(widths=(16, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)
    other = build_from_config(cfg, 'mmdet')
    path = tmp_path / 'other_arch.pth'
    torch.save({'state_dict': other.state_dict(), 'meta': {}}, path)
    run = run_tool('test.py', str(config), str(path), '--work-dir', str(tmp_path / 'work'))
    assert run.returncode != 0
    assert f"Checkpoint '{path}' does not fit the model" in run.stderr, run.stderr[-3000:]
    assert 'backbone.stem.conv1.conv.weight' in run.stderr  # the first tensor of another shape


def test_a_failed_save_leaves_the_good_checkpoint(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner.checkpoint import save_checkpoint

    path = tmp_path / 'iter_2.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))

    def crash_midway(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[: len(obj) // 2])
        raise OSError('disk full')

    monkeypatch.setattr(LocalBackend, 'put', crash_midway)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path))
    assert torch.equal(torch.load(path, weights_only=False)['state_dict']['w'], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth']
