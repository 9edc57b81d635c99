"""Backbones and segmentors exported to ONNX match PyTorch in ONNX Runtime and OpenVINO,
at sizes other than the traced one; unsupported exports are refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmeffformer.export import (
    UnsupportedModelError,
    export_onnx,
    exportable,
    output_names,
    verify_onnx,
)
from mmeffformer.models import EfficientFormer, EfficientFormerV2, switch_to_deploy
from mmeffformer.runtimes import build_backend
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict

SIZE = (96, 160)


def tiny_backbones():
    return {
        'v1-relative': lambda: EfficientFormer(TINY_V1),
        'v1-official': lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128),
        'v2-relative': lambda: EfficientFormerV2(arch_dict('tiny')),
        'v2-official': lambda: EfficientFormerV2(
            arch_dict('tiny'), attn_bias='official', attn_bias_size=128
        ),
    }


@pytest.mark.parametrize('name', sorted(tiny_backbones()))
@pytest.mark.parametrize('deploy', [False, True])
@pytest.mark.compat
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
    export_onnx(model, path, SIZE)
    onnx.checker.check_model(onnx.load(path))
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {'image': images.numpy()})
    # compared with the eval model, independently of what the export traced
    for ort_out, want in zip(got, eval_outputs):
        assert ort_out.shape == tuple(want.shape)
        error = np.abs(ort_out - want.numpy()).max()
        assert error <= 1e-4 * np.abs(want.numpy()).max(), error


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
@pytest.mark.parametrize('name', sorted(tiny_backbones()))
def test_one_file_serves_sizes_it_was_not_traced_at(tmp_path, name, backend):
    model = tiny_backbones()[name]()
    randomise_batchnorm(model)
    for bias in (m for m in model.modules() if hasattr(m, 'table')):
        bias.table.data.normal_()  # biases that matter: resized in the graph per size
    model.eval()
    path = str(tmp_path / 'backbone.onnx')
    export_onnx(model, path, SIZE)
    runtime = build_backend(backend, path, precision='fp32')
    for size in [(64, 64), (83, 117), (130, 97)]:
        images = torch.rand(1, 3, *size)
        with torch.no_grad():
            want = model(images)
        got = runtime(images.numpy())
        for out, ref in zip(got, want):
            assert out.shape == tuple(ref.shape)
            error = np.abs(out - ref.numpy()).max()
            assert error <= 1e-4 * np.abs(ref.numpy()).max(), (size, error)


def test_dynamic_batch_runs_other_batch_sizes(tmp_path):
    model = EfficientFormerV2(arch_dict('tiny')).eval()
    path = str(tmp_path / 'backbone.onnx')
    names = export_onnx(model, path, SIZE, dynamic_batch=True)
    (result,) = verify_onnx(model, path, [SIZE], names, batch=3)
    assert result.worst_rel() <= 1e-4, str(result)


def test_output_names_follow_out_indices():
    assert output_names(EfficientFormer(TINY_V1, out_indices=(1, 3))) == ['stage1', 'stage3']


def test_unknown_scope_is_refused_with_the_supported_ones():
    with pytest.raises(UnsupportedModelError, match="scope 'mmpretrain'.*'mmseg', 'mmdet'"):
        exportable(torch.nn.Identity(), 'mmpretrain', 'model')
