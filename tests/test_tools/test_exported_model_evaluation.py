"""tools/export_onnx.py -> tools/test.py --backend ...: the config's own data and metric on
an exported file give PyTorch's predictions, in ONNX Runtime and OpenVINO; files that do not
fit the config are refused before evaluation; tools/benchmark.py times the file."""

from __future__ import annotations

import pickle
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_utils

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.runtimes import build_backend
from tests.helpers import scripts
from tests.helpers.downstream import build_from_config
from tests.helpers.exported import assert_same_detections
from tests.helpers.scripts import ROOT, load_script
from tests.helpers.tiny_configs import tiny_demo_config, write_config
from tests.helpers.tiny_models import randomise_batchnorm

TOOLS = ROOT / 'tools'
BACKENDS = ['onnxruntime', 'openvino']


def run_tool(name, *args):
    run = scripts.run_tool(name, *args)
    return run.returncode, run.output


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Tiny trained-like detector and segmentor, their checkpoints, files and PyTorch results."""
    root = tmp_path_factory.mktemp('exported')
    data = root / 'data'
    write_dataset(str(data), num_train=1, num_val=3, size=(128, 128))
    spaces = {}
    for task, config in (
        ('det', tiny_demo_config(root, data)),
        ('seg', write_config(root, data, 1)),
    ):
        scope = 'mmdet' if task == 'det' else 'mmseg'
        torch.manual_seed(0)
        model = build_from_config(Config.fromfile(str(config)), scope)
        randomise_batchnorm(model)
        checkpoint = root / f'{task}.pth'
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
        onnx_file = root / f'{task}.onnx'
        status, log = run_tool(
            'export_onnx.py', config, onnx_file, '--part', 'model', '--checkpoint', checkpoint,
            '--shape', '128', '128', '--tolerance', '1e-4', '--score-thr', '0.1',
        )  # fmt: skip
        assert status == 0, log[-3000:]
        out = root / f'{task}_pytorch.pkl'
        status, log = run_tool(
            'test.py', config, checkpoint, '--work-dir', root / f'{task}_pt', '--out', out
        )
        assert status == 0, log[-3000:]
        spaces[task] = dict(config=config, onnx=onnx_file, pytorch=out, log=log)
    return root, spaces


def load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def detections(result):
    inst = result['pred_instances']
    masks = (
        np.stack([mask_utils.decode(rle) for rle in inst['masks']]) if len(inst['masks']) else None
    )
    return [inst['bboxes'].numpy(), inst['scores'].numpy(), inst['labels'].numpy()], masks


@pytest.mark.parametrize('backend', BACKENDS)
def test_exported_detector_evaluates_like_pytorch(workspace, backend, tmp_path):
    root, spaces = workspace
    space = spaces['det']
    out, shown = tmp_path / 'onnx.pkl', tmp_path / 'shown'
    status, log = run_tool(
        'test.py', space['config'], space['onnx'], '--backend', backend, '--precision', 'fp32',
        '--work-dir', tmp_path / 'work', '--out', out, '--show-dir', shown,
    )  # fmt: skip
    assert status == 0, log[-3000:]
    assert f'exported model {space["onnx"]} in {backend}' in log
    for metric in ('bbox_mAP', 'segm_mAP'):  # the config's CocoMetric on the file
        assert re.search(rf'coco/{metric}: [\d.]+', log), log[-2000:]
    got, want = load(out), load(space['pytorch'])
    assert len(got) == len(want) == 3
    for mine, theirs in zip(got, want):
        assert mine['img_path'] == theirs['img_path']
        (reference, ref_masks), (result, masks) = detections(theirs), detections(mine)
        assert_same_detections(reference, result, 1e-2, 1e-4)
        order = [int(np.argmin(np.abs(result[0] - box).max(1))) for box in reference[0]]
        assert (masks[order] != ref_masks).mean() < 1e-3  # pasted into the original image
    assert len(list(shown.rglob('*.jpg'))) == 3


@pytest.mark.parametrize('backend', BACKENDS)
def test_exported_segmentor_evaluates_like_pytorch(workspace, backend, tmp_path):
    _, spaces = workspace
    space = spaces['seg']
    out = tmp_path / 'onnx.pkl'
    status, log = run_tool(
        'test.py', space['config'], space['onnx'], '--backend', backend, '--precision', 'fp32',
        '--work-dir', tmp_path / 'work', '--out', out,
    )  # fmt: skip
    assert status == 0, log[-3000:]
    pytorch_miou = re.search(r'mIoU: ([\d.]+)', space['log'])[1]
    assert re.search(r'mIoU: ([\d.]+)', log)[1] == pytorch_miou
    for mine, theirs in zip(load(out), load(space['pytorch'])):
        labels, reference = mine['pred_sem_seg']['data'], theirs['pred_sem_seg']['data']
        assert labels.shape == reference.shape
        assert (labels != reference).float().mean() < 1e-3


def test_file_of_another_model_is_refused_before_evaluation(workspace, tmp_path):
    _, spaces = workspace
    test_tool = load_script(TOOLS / 'test.py')
    config, work = str(spaces['det']['config']), ['--work-dir', str(tmp_path)]
    with pytest.raises(ValueError) as refused:  # raised before any runner or dataloader
        test_tool.main([config, str(spaces['seg']['onnx']), *work])
    assert "does not fit the config: task: file 'segmentation', config 'detection'" in str(
        refused.value
    )
    classes = ['model.roi_head.bbox_head.num_classes=4', 'model.roi_head.mask_head.num_classes=4']
    with pytest.raises(ValueError, match="classes: file '3', config '4'"):
        test_tool.main([config, str(spaces['det']['onnx']), *work, '--cfg-options', *classes])
    assert not list(tmp_path.rglob('*.log'))  # no evaluation was started


def test_backend_flag_needs_an_exported_file(workspace, capsys):
    _, spaces = workspace
    test_tool = load_script(TOOLS / 'test.py')
    with pytest.raises(SystemExit):
        test_tool.main([str(spaces['det']['config']), 'x.pth', '--backend', 'openvino'])
    assert '--backend runs an exported .onnx model' in capsys.readouterr().err


def test_missing_runtime_names_the_extra(workspace, monkeypatch):
    _, spaces = workspace
    monkeypatch.setitem(sys.modules, 'openvino', None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape("pip install 'mmeffformer[deploy]'")):
        build_backend('openvino', str(spaces['seg']['onnx']))
    with pytest.raises(ValueError, match="backend must be one of .*got 'tensorrt'"):
        build_backend('tensorrt', str(spaces['seg']['onnx']))


def test_benchmark_tool_times_the_file_in_each_runtime(workspace, capsys):
    _, spaces = workspace
    benchmark = load_script(TOOLS / 'benchmark.py')
    for backend in BACKENDS:
        stats = benchmark.main([
            str(spaces['det']['config']), '--backend', backend, '--model',
            str(spaces['det']['onnx']), '--shape', '96', '112', '--warmup', '1', '--repeats', '2',
        ])  # fmt: skip
        printed = capsys.readouterr().out
        assert 'model 96x112 batch 1' in printed and f'{backend} (' in printed
        assert re.search(r'median [\d.]+ ms \(IQR', printed)
        assert stats['min'] > 0
