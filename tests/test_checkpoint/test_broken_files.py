"""A corrupt, empty or truncated checkpoint is named, with what was expected, everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from mmeffformer.checkpoint import UnreadableCheckpointError, read_checkpoint
from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.models import EfficientFormer
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import TINY, tiny_demo_config, write_config

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = 'expected a PyTorch / mmengine checkpoint (torch.save) or a .safetensors file'


def garbage(path: Path) -> Path:
    path.write_bytes(b'garbage\n')
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b'')
    return path


def truncated(path: Path) -> Path:
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:700])
    return path


BROKEN = [garbage, empty, truncated]


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('data')
    write_dataset(str(root), num_train=2, num_val=1, size=(128, 128))
    return root


@pytest.mark.parametrize('make', BROKEN)
def test_read_checkpoint_names_the_file_and_chains_the_cause(tmp_path, make):
    path = make(tmp_path / f'{make.__name__}.pth')
    with pytest.raises(UnreadableCheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and 'not a readable checkpoint' in message and EXPECTED in message
    if make is not empty:  # an empty file is refused before torch sees it
        assert info.value.__cause__ is not None


@pytest.mark.parametrize('make', BROKEN)
def test_init_cfg_and_mmengine_loaders_name_the_file(tmp_path, make):
    path = str(make(tmp_path / 'pretrained.pth'))
    model = EfficientFormer(TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(UnreadableCheckpointError, match='pretrained.pth is not a readable'):
        model.init_weights()
    # what load_from and --resume call (Runner.load_checkpoint / Runner.resume)
    with pytest.raises(UnreadableCheckpointError, match='pretrained.pth is not a readable'):
        load_checkpoint(model, path, map_location='cpu')
    with pytest.raises(
        UnreadableCheckpointError, match=EXPECTED.replace('(', r'\(').replace(')', r'\)')
    ):
        CheckpointLoader.load_checkpoint(path, map_location=None)


def test_convert_weights_tool_names_a_corrupt_file(tmp_path):
    src = garbage(tmp_path / 'downloaded.pth')
    run = run_tool('convert_weights.py', str(src), str(tmp_path / 'o.pth'))
    assert run.returncode == 1
    assert f'{src} is not a readable checkpoint' in run.stderr and EXPECTED in run.stderr
    assert 'Traceback' not in run.stderr


def test_test_tool_names_an_empty_checkpoint(tmp_path, data):
    config = tiny_demo_config(tmp_path, data)
    checkpoint = empty(tmp_path / 'epoch_12.pth')
    run = run_tool('test.py', str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work'))
    assert run.returncode != 0
    assert f'{checkpoint} is not a readable checkpoint: the file is empty' in run.stderr


def test_train_tool_resume_names_a_truncated_checkpoint(tmp_path, data):
    config = write_config(tmp_path, data, 1)
    checkpoint = truncated(tmp_path / 'iter_2.pth')
    run = run_tool(
        'train.py', str(config), '--resume', str(checkpoint), '--work-dir', str(tmp_path / 'work')
    )
    assert run.returncode != 0
    assert f'{checkpoint} is not a readable checkpoint' in run.stderr, run.stderr[-3000:]
