"""tools/quantize.py --backend pytorch -> tools/test.py MODEL.pt2: the backbones and necks of
tiny V1 and V2 segmentors and a V1 detector quantized with PT2E on their own train images,
served at sizes they were not calibrated at, evaluated with the config's metric; refusals
name what is wrong."""

from __future__ import annotations

import pickle
import re
import sys

import pytest
import torch
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.quantization import use_quantized_features
from mmeffformer.utils.model_analysis import build_model_from_cfg
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import batchnorm_config, tiny_demo_config
from tests.helpers.tiny_models import save_random_checkpoint

pytest.importorskip('torchao')
pytestmark = pytest.mark.expensive


def float_model(config, checkpoint):
    model = build_model_from_cfg(Config.fromfile(str(config)))
    model.load_state_dict(torch.load(checkpoint, weights_only=False)['state_dict'])
    return model.eval()


@pytest.fixture(scope='module')
def programs(tmp_path_factory):
    """Per task: config, checkpoint and its INT8 program (calibrated on 3 train images)."""
    root = tmp_path_factory.mktemp('pt2e')
    data = root / 'data'
    write_dataset(str(data), num_train=3, num_val=2, size=(128, 128))
    spaces = {}
    for task, config in (
        ('seg', batchnorm_config(root, data)),
        ('det', tiny_demo_config(root, data)),
        ('seg-v2', batchnorm_config(root, data, v2=True)),
    ):
        checkpoint = root / f'{task}.pth'
        save_random_checkpoint(config, checkpoint)
        program = root / f'{task}_int8.pt2'
        run = run_tool(
            'quantize.py', config, checkpoint, '--backend', 'pytorch', '--out', program,
            '--num-images', '3',
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        assert 'calibrating on 3 images of the train set' in run.stdout
        spaces[task] = dict(config=config, checkpoint=checkpoint, program=program)
    return spaces


@pytest.mark.parametrize('task', ['seg', 'det', 'seg-v2'])
def test_int8_features_follow_fp32_at_sizes_it_was_not_calibrated_at(programs, task):
    space = programs[task]
    reference = float_model(space['config'], space['checkpoint'])
    torch.manual_seed(1)  # other weights than the checkpoint's: the heads must come from the file
    quantized = build_model_from_cfg(Config.fromfile(str(space['config']))).eval()
    # uncompiled: the same numbers (tools/test.py below runs it compiled)
    use_quantized_features(quantized, str(space['program']), compile=False)
    graph = quantized.backbone.program.graph
    targets = {str(node.target) for node in graph.nodes if node.op == 'call_function'}
    assert any('quantize_per_tensor' in t for t in targets)  # INT8 activations
    assert any('dequantize_per_channel' in t for t in targets)  # INT8 weights
    for size in ((96, 160), (160, 128)):  # calibrated and exported at 128 x 128
        image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want, got = reference.extract_feat(image), quantized.extract_feat(image)
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            assert ((g - w).abs().max() / w.abs().max()).item() < 0.2
    # the heads are the checkpoint's, in float32
    head = 'decode_head' if task.startswith('seg') else 'roi_head'
    for key, value in reference.state_dict().items():
        if key.startswith(head):
            torch.testing.assert_close(quantized.state_dict()[key], value, rtol=0, atol=0)


# compiled by Inductor (~35 s each): a V1 detector and a V2 segmentor cover both families
# and both exported-model paths
@pytest.mark.parametrize('task, metric', [('det', 'coco/bbox_mAP'), ('seg-v2', 'mIoU')])
def test_test_tool_evaluates_the_program_with_the_configs_metric(programs, task, metric, tmp_path):
    space = programs[task]
    # under a bf16 autocast test loop, as a config trained with --amp has it: the heads
    # still run in float32, so the dumped scores are not bf16 values
    amp = ['--cfg-options', 'test_cfg.type=mmeffformer.AutocastTestLoop']
    out = tmp_path / 'results.pkl'
    run = run_tool(
        'test.py', space['config'], space['program'], '--work-dir', tmp_path, '--out', out, *amp
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'backbone and neck quantized (PT2E' in run.output
    assert "without the config's autocast test loop" in run.output
    value = re.search(rf'{re.escape(metric)}: ([\d.]+)', run.output)
    assert value and 0 <= float(value[1]) <= 100
    with open(out, 'rb') as file:
        results = pickle.load(file)
    if task == 'det':
        scores = torch.cat([torch.as_tensor(r['pred_instances']['scores']) for r in results])
    else:
        scores = torch.cat([r['seg_logits']['data'].flatten() for r in results])
    assert scores.numel() >= 20
    # a float32 value survives a round trip through bf16 only if its low 16 bits are zero
    rounded = scores.to(torch.bfloat16).float() == scores
    assert rounded.float().mean() < 0.5


def test_refusals_name_what_is_wrong(programs, tmp_path, monkeypatch):
    seg, det = programs['seg'], programs['det']
    work = ['--work-dir', tmp_path]
    run = run_tool('test.py', det['config'], seg['program'], *work)
    assert run.returncode == 1 and "task: file 'segmentation', config 'detection'" in run.stderr
    run = run_tool('test.py', seg['config'], seg['program'], '--backend', 'openvino', *work)
    assert run.returncode == 2 and 'a .pt2 INT8 program runs with --backend pytorch' in run.stderr
    args = [seg['config'], seg['checkpoint'], '--backend', 'pytorch']
    run = run_tool('quantize.py', *args, '--out', tmp_path / 'x.pt2', '--num-images', '9')
    assert run.returncode == 1
    assert '--num-images 9 is more than the 3 images of the train set' in run.stderr
    run = run_tool('quantize.py', *args, '--out', tmp_path / 'x.xml')
    assert run.returncode == 2 and 'must end with .pt2' in run.stderr
    for name in [name for name in sys.modules if name.split('.')[0] == 'torchao']:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    run = run_tool('quantize.py', *args, '--out', tmp_path / 'x.pt2', '--num-images', '1')
    assert run.returncode == 1 and "pip install 'mmeffformer[quantize]'" in run.stderr
    assert not (tmp_path / 'x.pt2').exists()


def test_benchmark_tool_times_the_model_with_the_program_in_place(programs, monkeypatch):
    from mmeffformer.quantization import QuantizedFeatures

    # the timing path; Inductor's compile of the program is what the evaluations above run
    monkeypatch.setattr(torch, 'compile', lambda module, **_: module)
    calls = []
    forward = QuantizedFeatures.forward
    monkeypatch.setattr(
        QuantizedFeatures,
        'forward',
        lambda self, image: calls.append(image.shape) or forward(self, image),
    )
    seg, det = programs['seg'], programs['det']
    timing = ['--shape', '96', '160', '--warmup', '1', '--repeats', '2']
    run = run_tool(
        'benchmark.py', seg['config'], '--backend', 'pytorch', '--model', seg['program'], *timing
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'model 96x160' in run.stdout and 'int8 backbone and neck, float32 heads' in run.stdout
    assert re.search(r'median [\d.]+ ms', run.stdout)
    assert calls == [torch.Size([1, 3, 96, 160])] * 3  # every timed call ran the program
    run = run_tool('benchmark.py', det['config'], '--backend', 'pytorch', '--model', seg['program'])
    assert run.returncode == 1 and "task: file 'segmentation', config 'detection'" in run.stderr
    run = run_tool(
        'benchmark.py', seg['config'], '--backend', 'openvino', '--model', seg['program']
    )
    assert run.returncode == 2 and 'a .pt2 program runs with --backend pytorch' in run.stderr
