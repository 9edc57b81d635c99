"""Checkpoints from mmpretrain-built detectors, .safetensors files, and the load report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mmeffformer.checkpoint import convert_checkpoint, load_pretrained_backbone
from mmeffformer.models import EfficientFormer, EfficientFormerV2
from tests.helpers.scripts import run_tool
from tests.helpers.v1_reference import (
    ARCHS,
    authors_to_mmpretrain_v1,
    authors_to_timm_v1,
    authors_v1_state,
    reference_v1_features,
)
from tests.helpers.v2_reference import (
    arch_dict,
    authors_to_timm_v2,
    authors_v2_state,
    reference_v2_features,
)

ROOT = Path(__file__).resolve().parents[2]


def v1_arch(name: str) -> dict:
    widths, depths, num_attention = ARCHS[name]
    return dict(widths=widths, depths=depths, num_attention=num_attention)


def mmpretrain_detector_file(arch: str, seed: int = 3):
    """A Mask R-CNN trained with ``type='mmpretrain.EfficientFormer', out_indices=(0, 1, 2, 3),
    reshape_last_feat=True``: GroupNorm output norms ``backbone.norm0..3``, no classifier.

    Returns ``(file contents, authors-layout backbone with norm0/2/4/6 for the reference)``.
    """
    authors = authors_v1_state(arch)
    gen = torch.Generator().manual_seed(seed)
    state = {
        key: value
        for key, value in authors_to_mmpretrain_v1(authors).items()
        if key.startswith('backbone.') and not key.startswith('backbone.norm3.')
    }
    widths = ARCHS[arch][0]
    for stage, width in enumerate(widths):
        # trained norms, far from GroupNorm's (1, 0) initialisation
        weight = 1 + torch.randn(width, generator=gen) * 0.5
        bias = torch.randn(width, generator=gen) * 0.5
        state[f'backbone.norm{stage}.weight'] = weight
        state[f'backbone.norm{stage}.bias'] = bias
        authors[f'norm{2 * stage}.weight'], authors[f'norm{2 * stage}.bias'] = weight, bias
    state['neck.lateral_convs.0.conv.weight'] = torch.randn(256, widths[0], 1, 1, generator=gen)
    state['rpn_head.rpn_conv.weight'] = torch.randn(256, 256, 3, 3, generator=gen)
    return {'state_dict': state, 'meta': {'epoch': 12}}, authors


@pytest.mark.parametrize('arch', ['l1', 'l3', 'l7'])
def test_mmpretrain_detector_output_norms_are_carried_over(tmp_path, arch):
    contents, authors = mmpretrain_detector_file(arch)
    path = tmp_path / f'maskrcnn_mmpretrain_{arch}.pth'
    torch.save(contents, path)
    model = EfficientFormer(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    report = load_pretrained_backbone(model, str(path), family='v1')
    assert report.missing == [] and report.unexpected == [] and report.new_output_norms == []
    assert len(report.loaded) == report.total
    model.eval()
    x = torch.rand(1, 3, 224, 224)  # the reference gathers the table for the 7 x 7 grid
    with torch.no_grad():
        ours = model(x)
        reference = reference_v1_features(authors, arch, x, out_norm=True)
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_convert_weights_keeps_mmpretrain_output_norms_neck_and_heads(tmp_path):
    contents, _ = mmpretrain_detector_file('l1')
    src, dst = tmp_path / 'mmpretrain_det.pth', tmp_path / 'ours.pth'
    torch.save(contents, src)
    run_tool('convert_weights.py', str(src), str(dst)).check()
    state = torch.load(dst, weights_only=False)['state_dict']
    source = contents['state_dict']
    for stage in range(4):
        for name in ('weight', 'bias'):
            assert torch.equal(
                state[f'backbone.out_norms.{stage}.{name}'], source[f'backbone.norm{stage}.{name}']
            )
    assert torch.equal(state['rpn_head.rpn_conv.weight'], source['rpn_head.rpn_conv.weight'])
    assert torch.equal(
        state['neck.lateral_convs.0.conv.weight'], source['neck.lateral_convs.0.conv.weight']
    )


def test_mmpretrain_classifier_final_norm_is_dropped_and_output_norms_are_new():
    state = authors_to_mmpretrain_v1(authors_v1_state('tiny'))
    assert 'backbone.norm3.weight' in state and 'head.head.weight' in state
    result = convert_checkpoint({'state_dict': state})
    assert not any(key.startswith('out_norms') for key in result['state_dict'])
    assert 'norm3.weight' in result['meta']['mmeffformer']['dropped']


@pytest.mark.parametrize('layout', ['authors', 'mmpretrain'])
def test_load_report_names_output_norms_new_not_missing(tmp_path, layout):
    state = authors_v1_state('tiny')
    saved = {'model': state} if layout == 'authors' else authors_to_mmpretrain_v1(state)
    path = tmp_path / 'imagenet.pth'
    torch.save(saved, path)
    model = EfficientFormer(v1_arch('tiny'))  # norm_out=True: four GroupNorm outputs
    report = load_pretrained_backbone(model, str(path), family='v1')
    assert report.missing == []
    assert report.new_output_norms == [
        f'out_norms.{stage}.{name}' for stage in range(4) for name in ('bias', 'weight')
    ]
    assert 'new output norms, which a classification file does not have (8)' in report.summary()
    # a file that has some output norms: those it lacks are really missing
    del state['norm.weight']
    path_partial = tmp_path / 'partial.pth'
    torch.save({'state_dict': {**state, 'norm0.weight': torch.ones(8)}}, path_partial)
    partial = load_pretrained_backbone(EfficientFormer(v1_arch('tiny')), str(path_partial))
    assert 'out_norms.0.bias' in partial.missing and partial.new_output_norms == []


@pytest.mark.compat
def test_safetensors_v1_timm_flat_keys_load_and_reproduce_reference(tmp_path):
    state = authors_v1_state('tiny')
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in authors_to_timm_v1(state).items()}, str(path))
    model = EfficientFormer(
        v1_arch('tiny'), norm_out=False, init_cfg=dict(type='Pretrained', checkpoint=str(path))
    )
    model.init_weights()
    report = load_pretrained_backbone(model, str(path), family='v1')
    assert report.layout == 'timm' and report.missing == [] and report.unexpected == []
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        for got, want in zip(model.eval()(x), reference_v1_features(state, 'tiny', x)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.compat
def test_safetensors_v2_without_suffix_loads_and_converts(tmp_path):
    state = authors_v2_state('tiny')
    path = tmp_path / 'weights.bin'  # recognised by its header, not its name
    save_file({k: v.contiguous() for k, v in authors_to_timm_v2(state).items()}, str(path))
    model = EfficientFormerV2(
        arch_dict('tiny'), init_cfg=dict(type='Pretrained', checkpoint=str(path))
    )
    model.init_weights()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        for got, want in zip(model.eval()(x), reference_v2_features(state, 'tiny', x)):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    dst = tmp_path / 'converted.pth'
    run = run_tool('convert_weights.py', str(path), str(dst)).check()
    assert 'timm layout, EfficientFormerV2' in run.stdout
    EfficientFormerV2(arch_dict('tiny')).load_state_dict(
        torch.load(dst, weights_only=False)['state_dict'], strict=True
    )
