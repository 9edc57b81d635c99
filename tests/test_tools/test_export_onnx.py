"""ONNX export: ONNX Runtime reproduces PyTorch for backbones and a Semantic FPN segmentor."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmeffformer.export import export_onnx, exportable, output_names, verify_onnx
from mmeffformer.models import EfficientFormer, EfficientFormerV2
from mmeffformer.models.deploy import switch_to_deploy
from tests.helpers.v2_reference import arch_dict
from tests.test_models.test_deploy import TINY_V1, randomise_batchnorm

ROOT = Path(__file__).resolve().parents[2]
SIZE = (96, 160)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_tool = load_tool('export_onnx')


def tiny_backbones():
    return {
        'v1-relative': lambda: EfficientFormer(TINY_V1),
        'v1-official': lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128),
        'v2-relative': lambda: EfficientFormerV2(arch_dict('tiny')),
    }


@pytest.mark.parametrize('name', sorted(tiny_backbones()))
@pytest.mark.parametrize('deploy', [False, True])
def test_backbone_export_matches_pytorch(tmp_path, name, deploy):
    model = tiny_backbones()[name]()
    randomise_batchnorm(model)
    model.eval()
    images = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        eval_outputs = model(images)
    if deploy:
        switch_to_deploy(model, sizes=[SIZE])
    path = str(tmp_path / 'backbone.onnx')
    export_onnx(model, path, SIZE, output_names('backbone'))
    onnx.checker.check_model(onnx.load(path))
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {'image': images.numpy()})
    # compared with the eval model, independently of what the export traced
    for ort_out, want in zip(got, eval_outputs):
        assert ort_out.shape == tuple(want.shape)
        error = np.abs(ort_out - want.numpy()).max()
        assert error <= 1e-4 * np.abs(want.numpy()).max(), error


def test_dynamic_batch_runs_other_batch_sizes(tmp_path):
    model = EfficientFormerV2(arch_dict('tiny')).eval()
    path = str(tmp_path / 'backbone.onnx')
    export_onnx(model, path, SIZE, output_names('backbone'), dynamic_batch=True)
    result = verify_onnx(model, path, SIZE, output_names('backbone'), batch=3)
    assert result.worst_rel() <= 1e-4, str(result)


def test_fixed_size_export_rejects_another_size(tmp_path):
    model = EfficientFormer(TINY_V1).eval()
    path = str(tmp_path / 'backbone.onnx')
    export_onnx(model, path, SIZE, output_names('backbone'))
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    with pytest.raises(Exception, match='(?i)dimension|shape'):
        session.run(None, {'image': np.zeros((1, 3, 64, 64), dtype=np.float32)})


def tiny_segmentor_config(tmp_path: Path) -> Path:
    widths = list(TINY_V1['widths'])
    text = f"""
_base_ = ['{ROOT}/configs/demo/semfpn_effformer_l1_synthetic.py']
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_V1!r}), attn_bias_size=128),
    neck=dict(in_channels={widths}, out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16),
)
"""
    path = tmp_path / 'tiny_semfpn.py'
    path.write_text(text)
    return path


def test_tool_exports_and_verifies_a_segmentor(tmp_path, capsys):
    out = tmp_path / 'semfpn.onnx'
    args = [str(tiny_segmentor_config(tmp_path)), str(out), '--part', 'model']
    status = export_tool.main(args + ['--shape', '96', '128', '--deploy', '--tolerance', '1e-4'])
    printed = capsys.readouterr().out
    assert status == 0, printed  # the tool's own check at the README's 1e-4
    relative = re.search(r'seg_logits: max abs diff \S+, relative to max \|output\| (\S+)', printed)
    assert relative and float(relative[1]) <= 1e-4, printed
    graph = onnx.load(str(out)).graph
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 4, 96, 128]  # 4 classes, logits resized to the input


def test_whole_detector_export_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="mmseg segmentors only, got scope 'mmdet'"):
        exportable(torch.nn.Identity(), 'mmdet', 'model', SIZE)


def test_tool_rejects_bad_output_name(tmp_path):
    with pytest.raises(SystemExit):
        export_tool.main([str(tiny_segmentor_config(tmp_path)), str(tmp_path / 'x.pt')])
