"""Backbones exported to ONNX match PyTorch in ONNX Runtime; unsupported exports are refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmeffformer.deploy import export_onnx, exportable, output_names, verify_onnx
from mmeffformer.models import EfficientFormer, EfficientFormerV2, switch_to_deploy
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict

SIZE = (96, 160)


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


def test_whole_detector_export_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="mmseg segmentors only, got scope 'mmdet'"):
        exportable(torch.nn.Identity(), 'mmdet', 'model', SIZE)
