"""tools/quantize.py -> tools/test.py MODEL.xml: tiny V1 and V2 segmentors and a V1 detector quantized to
INT8 on their own train images, run at sizes they were not calibrated at, evaluated with the
config's metric; refusals name what is wrong."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.runtimes import build_backend
from tests.helpers.downstream import build_from_config
from tests.helpers.scripts import ROOT, load_script
from tests.helpers.tiny_configs import tiny_demo_config, write_config
from tests.helpers.tiny_models import randomise_batchnorm
from tests.helpers.v2_reference import arch_dict

pytest.importorskip('nncf')
pytestmark = pytest.mark.expensive
TOOLS = ROOT / 'tools'


def v2_segmentor_config(root, data):
    """The tiny segmentor config with a tiny EfficientFormerV2 backbone."""
    path = root / 'tiny_v2_semfpn.py'
    path.write_text(f"""
_base_ = ['{write_config(root, data, 1)}']
model = dict(backbone=dict(
    _delete_=True, type='mmeffformer.EfficientFormerV2', arch={arch_dict('tiny')!r},
    attn_bias_size=128, norm_cfg=dict(type='GN', num_groups=1)))
""")
    return path


def balance_classes(segmentor, cfg) -> None:
    """Set the classifier's biases so that each class wins on part of the train images: a
    random segmentor predicts one class everywhere, and then no metric tells INT8 from
    float."""
    from mmeffformer.quantization import calibration_batches

    with torch.no_grad():
        logits = torch.cat([
            segmentor.encode_decode(image, [sample.metainfo]).flatten(2)
            for image, sample in calibration_batches(cfg, 3)
        ], 2)  # fmt: skip
        segmentor.decode_head.conv_seg.bias -= logits.median(2).values[0]


def label_val_set_with_predictions(segmentor, cfg) -> None:
    """Rewrite the val set's labels as the float model's own predictions: float scores 100
    mIoU there, and every pixel INT8 changes costs points."""
    import cv2

    from mmeffformer.quantization.accuracy_control import val_items
    from mmeffformer.quantization.calibration import build_preprocessor

    preprocessor = build_preprocessor(cfg)
    items, _ = val_items(cfg)
    with torch.no_grad():
        for item in items:
            data = preprocessor(pseudo_collate([item]), False)
            sample = segmentor.predict(data['inputs'], data['data_samples'])[0]
            labels = sample.pred_sem_seg.data[0].numpy().astype(np.uint8)
            cv2.imwrite(sample.seg_map_path, labels + 1)  # read with reduce_zero_label


@pytest.fixture(scope='module')
def quantized(tmp_path_factory):
    """Per task: config, checkpoint, the fp32 export and its INT8 IR (calibrated on 3 images)."""
    root = tmp_path_factory.mktemp('int8')
    data = root / 'data'
    write_dataset(str(data), num_train=3, num_val=2, size=(128, 128))
    quantize = load_script(TOOLS / 'quantize.py')
    export = load_script(TOOLS / 'export_onnx.py')
    spaces = {}
    for task, config in (
        ('seg', write_config(root, data, 1)),
        ('det', tiny_demo_config(root, data)),
        ('seg-v2', v2_segmentor_config(root, data)),
        ('det-v2', tiny_demo_config(root, data, v2=True)),
    ):
        torch.manual_seed(0)
        scope = 'mmdet' if task.startswith('det') else 'mmseg'
        model = build_from_config(Config.fromfile(str(config)), scope)
        randomise_batchnorm(model)
        if task == 'seg':
            balance_classes(model, Config.fromfile(str(config)))
            label_val_set_with_predictions(model, Config.fromfile(str(config)))
        checkpoint = root / f'{task}.pth'
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
        onnx_file = root / f'{task}.onnx'
        export.main([
            str(config), str(onnx_file), '--part', 'model', '--checkpoint', str(checkpoint),
            '--shape', '128', '128', '--no-verify',
        ])  # fmt: skip
        xml = root / f'{task}_int8.xml'
        quantize.main([
            str(config), str(checkpoint), '--out', str(xml), '--onnx', str(onnx_file),
            '--num-images', '3',
        ])  # fmt: skip
        spaces[task] = dict(config=config, checkpoint=checkpoint, onnx=onnx_file, xml=xml)
    return spaces


def test_the_ir_is_int8_with_free_height_and_width_and_float_attention_biases(quantized):
    import openvino as ov

    for space in quantized.values():
        model = ov.Core().read_model(str(space['xml']))
        shape = model.input('image').get_partial_shape()
        assert shape[2].is_dynamic and shape[3].is_dynamic
        ops = model.get_ordered_ops()
        assert sum(op.get_type_name() == 'FakeQuantize' for op in ops) > 0
        # nothing feeds a quantizer from a bias lookup: the lookups stay float
        for op in ops:
            if op.get_type_name() == 'FakeQuantize':
                source = op.input_value(0).get_node()
                assert '/attn/bias/' not in source.get_friendly_name()
    # V2's attention query and key convolutions stay float, its other convolutions do not
    ops = ov.Core().read_model(str(quantized['seg-v2']['xml'])).get_ordered_ops()
    convolutions = [op for op in ops if op.get_type_name() == 'Convolution']
    query_key = [op for op in convolutions if re.search('/attn/(q|k)/', op.get_friendly_name())]
    assert query_key and len(query_key) < len(convolutions)
    for op in convolutions:
        fed = {through_reshapes(op.input_value(i).get_node()).get_type_name() for i in range(2)}
        assert ('FakeQuantize' in fed) != (op in query_key), op.get_friendly_name()


def through_reshapes(node):
    """The first node above ``node`` that is not a Reshape (a quantizer before a reshape
    quantizes what the reshape feeds)."""
    while node.get_type_name() == 'Reshape':
        node = node.input_value(0).get_node()
    return node


@pytest.mark.parametrize('task', ['seg', 'det', 'seg-v2', 'det-v2'])
def test_int8_follows_fp32_at_a_size_it_was_not_calibrated_at(quantized, task):
    space = quantized[task]
    image = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(1)).numpy() * 2 - 1
    fp32 = build_backend('openvino', str(space['onnx']), 'fp32')(image)
    int8 = build_backend('openvino', str(space['xml']), 'fp32')(image)
    if task.startswith('seg'):  # logits at the input size
        assert int8[0].shape == fp32[0].shape == (1, 4, 96, 160)
        error = np.abs(int8[0] - fp32[0]).max() / np.abs(fp32[0]).max()
        assert error < 0.1
    else:  # boxes, scores, labels, masks: the same detections
        assert [o.shape[1:] for o in int8] == [o.shape[1:] for o in fp32]
        assert len(int8[0]) > 0


@pytest.mark.parametrize(
    'task, metric',
    [('seg', 'mIoU'), ('det', 'coco/bbox_mAP'), ('seg-v2', 'mIoU'), ('det-v2', 'coco/bbox_mAP')],
)
def test_test_tool_evaluates_the_ir_with_the_configs_metric(quantized, task, metric, tmp_path):
    space = quantized[task]
    test_tool = load_script(TOOLS / 'test.py')
    metrics = test_tool.main([str(space['config']), str(space['xml']), '--work-dir', str(tmp_path)])
    assert 0 <= metrics[metric] <= 100


def test_refusals_name_what_is_wrong(quantized, tmp_path, capsys, monkeypatch):
    seg, det = quantized['seg'], quantized['det']
    test_tool = load_script(TOOLS / 'test.py')
    quantize = load_script(TOOLS / 'quantize.py')
    work = ['--work-dir', str(tmp_path)]
    with pytest.raises(ValueError, match="task: file 'segmentation', config 'detection'"):
        test_tool.main([str(det['config']), str(seg['xml']), *work])
    with pytest.raises(SystemExit):
        test_tool.main([str(seg['config']), str(seg['xml']), '--backend', 'onnxruntime', *work])
    assert 'an OpenVINO .xml IR runs with --backend openvino' in capsys.readouterr().err
    args = [str(seg['config']), str(seg['checkpoint']), '--onnx', str(seg['onnx'])]
    with pytest.raises(ValueError, match=re.escape('--num-images 9 is more than the 3 images')):
        quantize.main([*args, '--out', str(tmp_path / 'x.xml'), '--num-images', '9'])
    with pytest.raises(SystemExit):
        quantize.main([*args, '--out', str(tmp_path / 'x.onnx')])
    assert 'must end with .xml' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, 'nncf', None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape("pip install 'mmeffformer[quantize]'")):
        quantize.main([*args, '--out', str(tmp_path / 'x.xml'), '--num-images', '1'])
    assert not (tmp_path / 'x.xml').exists()


@pytest.mark.parametrize(
    'task, metric', [('seg', 'mIoU'), ('seg', 'aAcc'), ('det', 'coco/bbox_mAP')]
)
def test_accuracy_control_measures_what_the_test_tool_measures(quantized, task, metric, tmp_path):
    import openvino as ov

    from mmeffformer.quantization import AccuracyControl

    space = quantized[task]
    cfg = Config.fromfile(str(space['config']))
    default = AccuracyControl.from_config(cfg, 0.5).metric.metric
    assert default == {'seg': 'mIoU', 'det': 'bbox_mAP'}[task]
    control = AccuracyControl.from_config(cfg, 0.5, metric)
    assert len(control.items) == 2  # the val set
    compiled = ov.Core().compile_model(
        str(space['onnx']), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'}
    )
    ours = control.metric(compiled, control.items)
    test_tool = load_script(TOOLS / 'test.py')
    args = ['--backend', 'openvino', '--precision', 'fp32', '--work-dir', str(tmp_path)]
    theirs = test_tool.main([str(space['config']), str(space['onnx']), *args])[metric]
    assert ours == pytest.approx(theirs * (100 if task == 'det' else 1), abs=1e-6)  # in points


def quantizers(xml) -> int:
    import openvino as ov

    ops = ov.Core().read_model(str(xml)).get_ordered_ops()
    return sum(op.get_type_name() == 'FakeQuantize' for op in ops)


def test_max_drop_quantizes_with_accuracy_control_on_the_val_metric(quantized, tmp_path, capsys):
    seg = quantized['seg']
    quantize = load_script(TOOLS / 'quantize.py')
    out = tmp_path / 'controlled.xml'
    quantize.main([
        str(seg['config']), str(seg['checkpoint']), '--onnx', str(seg['onnx']),
        '--out', str(out), '--num-images', '3', '--max-drop', '20',
    ])  # fmt: skip
    assert 'accuracy control: mIoU on the 2 images of the val set' in capsys.readouterr().out
    test_tool = load_script(TOOLS / 'test.py')
    work = ['--work-dir', str(tmp_path)]
    fp32 = test_tool.main([str(seg['config']), str(seg['onnx']), '--backend', 'onnxruntime', *work])
    int8 = test_tool.main([str(seg['config']), str(out), *work])
    assert fp32['mIoU'] > 99.5  # the val labels are its predictions
    assert int8['mIoU'] >= fp32['mIoU'] - 20
    assert int8['mIoU'] < 100  # the metric sees what INT8 changes
    assert quantizers(out) > 0


def test_max_drop_refusals_name_what_is_accepted(quantized, tmp_path, capsys):
    seg = quantized['seg']
    quantize = load_script(TOOLS / 'quantize.py')
    args = [str(seg['config']), str(seg['checkpoint']), '--onnx', str(seg['onnx'])]
    for extra, message in (
        (['--max-drop', '-1'], 'a drop in points, at least 0; got -1.0'),
        (['--metric', 'mIoU'], '--metric names the metric of --max-drop'),
    ):
        with pytest.raises(SystemExit):
            quantize.main([*args, '--out', str(tmp_path / 'x.xml'), *extra])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        quantize.main([*args[:2], '--out', str(tmp_path / 'x.pt2'), '--backend', 'pytorch',
                       '--max-drop', '1'])  # fmt: skip
    assert (
        "--max-drop is NNCF's accuracy control, for --backend openvino" in capsys.readouterr().err
    )
    with pytest.raises(KeyError, match=re.escape("0 metrics named 'mIoUU'; name one of ['IoU.b")):
        quantize.main([*args, '--out', str(tmp_path / 'x.xml'), '--max-drop', '1',
                       '--metric', 'mIoUU', '--num-images', '1'])  # fmt: skip
    assert not (tmp_path / 'x.xml').exists()
