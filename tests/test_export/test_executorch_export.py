"""tools/export_executorch.py -> ExecuTorch (XNNPACK) -> tools/test.py MODEL.pte: a tiny V2
segmentor in fp32, a tiny V1 segmentor in INT8 and a tiny Mask R-CNN in fp32 and INT8, run at
sizes below the bound that they were not exported at, evaluated with the config's metric; a
size above the bound and a file of another model are refused."""

from __future__ import annotations

import pickle
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.export import exportable
from mmeffformer.models import switch_to_deploy
from mmeffformer.runtimes import build_backend
from mmeffformer.runtimes.program_detector import DetectorTrunk
from mmeffformer.utils.model_analysis import build_model_from_cfg
from tests.helpers.exported import assert_same_detections, mmdet_predict
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import batchnorm_config, tiny_demo_config
from tests.helpers.tiny_models import save_random_checkpoint

pytest.importorskip('executorch')
pytestmark = pytest.mark.expensive
BOUND = (288, 320)  # the config's test images are 256 x 256


def loaded_model(space: dict) -> torch.nn.Module:
    """The config's model of a form with its checkpoint's weights, in PyTorch."""
    model = build_model_from_cfg(Config.fromfile(str(space['config'])))
    model.load_state_dict(torch.load(space['checkpoint'], weights_only=False)['state_dict'])
    return model


def float_logits(space: dict, image: torch.Tensor) -> np.ndarray:
    """A form's segmentor in PyTorch: logits at the input size."""
    with torch.no_grad():
        segmentor = switch_to_deploy(loaded_model(space).eval())
        return exportable(segmentor, 'mmseg', 'model')(image).numpy()


@pytest.fixture(scope='module')
def programs(tmp_path_factory):
    """Per form: config, checkpoint and its .pte (V2 segmentor fp32; V1 segmentor INT8 on 3
    train images; Mask R-CNN fp32, and INT8 on 3 train images)."""
    root = tmp_path_factory.mktemp('executorch')
    data = root / 'data'
    write_dataset(str(data), num_train=3, num_val=2, size=(128, 128))
    spaces = {}
    for form, config, extra in (
        ('v2-fp32', batchnorm_config(root, data, v2=True), []),
        ('v1-int8', batchnorm_config(root, data), ['--int8', '--num-images', '3']),
        ('det-fp32', tiny_demo_config(root, data), ['--score-thr', '0.05']),
        ('det-int8', tiny_demo_config(root, data), ['--int8', '--num-images', '3']),
    ):
        checkpoint = root / f'{form}.pth'
        save_random_checkpoint(config, checkpoint)
        program = root / f'{form}.pte'
        tolerance = ['--tolerance', '0.5'] if '--int8' in extra else []
        run = run_tool(
            'export_executorch.py', config, program, '--part', 'model', '--checkpoint',
            checkpoint, '--max-shape', *map(str, BOUND), '--shape', '128', '160',
            *extra, *tolerance,
        )  # fmt: skip
        assert run.returncode == 0, run.output[-3000:]
        spaces[form] = dict(config=config, checkpoint=checkpoint, program=program, run=run)
    return spaces


def test_the_tool_checks_the_program_at_two_sizes_and_names_its_bound(programs):
    stdout = programs['v2-fp32']['run'].stdout
    assert 'height and width from 96 up to 288x320' in stdout
    sizes = re.findall(r'^input (\d+)x(\d+):', stdout, re.M)
    assert sizes[0] == ('128', '160') and len(sizes) == 2
    height, width = map(int, sizes[1])
    assert height != width and height % 32 and width % 32
    errors = [float(e) for e in re.findall(r'relative to max \|output\| ([\d.e+-]+)', stdout)]
    assert len(errors) == 2 and max(errors) < 1e-3
    assert 'calibrating on 3 images of the train set' in programs['v1-int8']['run'].stdout
    stdout = programs['det-fp32']['run'].stdout
    assert 'outputs boxes, scores, labels, masks' in stdout
    assert len(re.findall(r'^  masks \(probabilities\): max abs diff', stdout, re.M)) == 2
    # INT8 detector: its networks against PyTorch's (scores cross the threshold in INT8)
    stdout = programs['det-int8']['run'].stdout
    errors = re.findall(r'^  (features|class scores|box deltas) \d: .* \|output\| ([\d.e+-]+)$',
                        stdout, re.M)  # fmt: skip
    assert len(errors) == 2 * 15 and 'detections' not in stdout
    assert 1e-4 < min(float(e) for _, e in errors) and max(float(e) for _, e in errors) < 0.5


@pytest.mark.parametrize('form, tolerance', [('v2-fp32', 1e-4), ('v1-int8', 0.35)])
def test_the_program_follows_pytorch_at_sizes_it_was_not_exported_at(programs, form, tolerance):
    space = programs[form]
    runtime = build_backend('executorch', str(space['program']))
    assert runtime.precision == form.split('-')[1]
    for size in ((100, 150), BOUND):  # below the bound, and the bound itself
        image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
        (logits,) = runtime(image.numpy())
        want = float_logits(space, image)
        assert logits.shape == want.shape == (1, 4, *size)
        assert np.abs(logits - want).max() / np.abs(want).max() < tolerance
        # the program itself ends at the decode head (stride 4); the runtime resizes
        (head,) = runtime.program.load_method('forward').execute([image])
        assert head.shape == (1, 4, -(-size[0] // 4), -(-size[1] // 4))


def test_the_detector_program_gives_mmdets_detections_at_sizes_it_was_not_exported_at(programs):
    space = programs['det-fp32']
    runtime = build_backend('executorch', str(space['program']))
    detector = loaded_model(space)
    for seed, size in enumerate(((100, 150), BOUND)):
        image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
        want = mmdet_predict(detector, image)  # mmdet's own inference in PyTorch
        got = runtime(image.numpy())
        assert [g.shape[1:] for g in got] == [(4,), (), (), (28, 28)]
        reference = [want.bboxes, want.scores, want.labels]
        assert_same_detections(reference, got[:3], 2e-2, 1e-4)


def test_the_test_tool_gives_the_detector_programs_detections_as_pytorchs(programs, tmp_path):
    from pycocotools import mask as mask_utils

    space = programs['det-fp32']
    results = {}
    for name in ('program', 'checkpoint'):
        out = tmp_path / f'{name}.pkl'
        run = run_tool(
            'test.py', space['config'], space[name], '--work-dir', tmp_path, '--out', out
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert re.search(r'coco/segm_mAP: [\d.]+', run.output)
        assert ('in executorch (XNNPACK, fp32)' in run.output) == (name == 'program')
        with open(out, 'rb') as file:
            results[name] = pickle.load(file)
    assert len(results['program']) == len(results['checkpoint']) == 2
    for got, want in zip(results['program'], results['checkpoint']):
        got, want = got['pred_instances'], want['pred_instances']
        reference = [want['bboxes'].numpy(), want['scores'].numpy(), want['labels'].numpy()]
        found = [got['bboxes'].numpy(), got['scores'].numpy(), got['labels'].numpy()]
        assert_same_detections(reference, found, 1e-2, 1e-4)
        order = [int(np.argmin(np.abs(found[0] - box).max(1))) for box in reference[0]]
        masks = np.stack([mask_utils.decode(rle) for rle in got['masks']])
        want_masks = np.stack([mask_utils.decode(rle) for rle in want['masks']])
        assert (masks[order] != want_masks).mean() < 1e-3  # pasted into the original image


def test_the_int8_detector_programs_networks_follow_pytorch_at_sizes_not_exported_at(programs):
    space = programs['det-int8']
    runtime = build_backend('executorch', str(space['program']))
    assert runtime.precision == 'int8'
    detector = loaded_model(space)
    graph = exportable(switch_to_deploy(detector.eval()), 'mmdet', 'model')
    trunk = DetectorTrunk(graph).eval()
    forward = runtime.program.load_method('forward')
    for seed, size in enumerate(((96, 224), BOUND)):
        image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            want = trunk(image)  # FPN features, RPN scores and deltas per level
        got = forward.execute([image])
        assert [g.shape for g in got] == [w.shape for w in want]
        errors = [((g - w).abs().max() / w.abs().max()).item() for g, w in zip(got, want)]
        assert 1e-4 < min(errors) and max(errors) < 0.35, errors  # INT8, close to float
        boxes, scores, labels, masks = runtime(image.numpy())  # the whole inference
        assert boxes.shape[1:] == (4,) and masks.shape[1:] == (28, 28)
        assert len(boxes) == len(scores) == len(labels) == len(masks)


@pytest.mark.parametrize('form', ['v2-fp32', 'det-fp32'])
def test_a_size_above_the_bound_is_refused_with_the_bound(programs, form):
    runtime = build_backend('executorch', str(programs[form]['program']))
    with pytest.raises(ValueError, match='serves images up to 288x320 .*; got 289x150'):
        runtime(np.zeros((1, 3, 289, 150), np.float32))


@pytest.mark.parametrize(
    'form, metric, tolerance',
    [('v2-fp32', 'mIoU', 0.1), ('v1-int8', 'mIoU', 5.0), ('det-int8', 'coco/bbox_mAP', 0.1)],
)
def test_test_tool_evaluates_the_program_with_the_configs_metric(
    programs, form, metric, tolerance, tmp_path
):
    space = programs[form]
    run = run_tool('test.py', space['config'], space['program'], '--work-dir', tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'in executorch (XNNPACK, {form.split("-")[1]})' in run.output
    got = float(re.search(rf'{metric}: ([\d.]+)', run.output)[1])
    run = run_tool('test.py', space['config'], space['checkpoint'], '--work-dir', tmp_path)
    want = float(re.search(rf'{metric}: ([\d.]+)', run.output)[1])
    assert abs(got - want) <= tolerance


def test_benchmark_tool_times_the_program(programs):
    space = programs['v2-fp32']
    run = run_tool(
        'benchmark.py', space['config'], '--backend', 'executorch', '--model', space['program'],
        '--shape', '128', '160', '--warmup', '1', '--repeats', '2',
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'executorch (XNNPACK, fp32)' in run.stdout and re.search(r'median [\d.]+ ms', run.stdout)


def test_refusals_name_what_is_wrong(programs, tmp_path, monkeypatch):
    space = programs['v2-fp32']
    det_config = tiny_demo_config(tmp_path, tmp_path / 'data')
    run = run_tool('test.py', det_config, space['program'], '--work-dir', tmp_path)
    assert run.returncode == 1 and "task: file 'segmentation', config 'detection'" in run.stderr
    run = run_tool('test.py', space['config'], space['program'], '--backend', 'openvino')
    assert run.returncode == 2 and 'an ExecuTorch .pte program runs with --backend executorch' in (
        run.stderr
    )
    run = run_tool(
        'export_executorch.py', space['config'], tmp_path / 'x.pte', '--max-shape', '64', '200'
    )
    assert run.returncode == 2 and '--max-shape must be at least 96 on each side' in run.stderr
    run = run_tool(
        'export_executorch.py', space['config'], tmp_path / 'x.pte', '--max-shape', '128', '128',
        '--shape', '160', '128',
    )  # fmt: skip
    assert run.returncode == 2 and 'must lie between 96 and the bound' in run.stderr
    for name in [name for name in sys.modules if name.split('.')[0] == 'executorch']:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    run = run_tool('export_executorch.py', space['config'], tmp_path / 'x.pte')
    assert run.returncode == 1 and "pip install 'mmeffformer[mobile]'" in run.stderr
    with pytest.raises(ImportError, match=re.escape("pip install 'mmeffformer[mobile]'")):
        build_backend('executorch', str(space['program']))
    assert not (tmp_path / 'x.pte').exists()
