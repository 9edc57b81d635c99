"""EfficientFormer (V1): shapes, fidelity to the authors' weights, standard arguments."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.models import EfficientFormer
from tests.helpers.checkpointing import assert_with_cp_recomputes
from tests.helpers.v1_reference import (
    ARCHS,
    authors_to_mmpretrain_v1,
    authors_to_timm_v1,
    authors_v1_state,
    reference_v1_features,
)

TINY = dict(widths=(8, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)


def expected_shapes(widths, height, width, batch=1):
    shapes = []
    size = (height, width)
    for stage, channels in enumerate(widths):
        for _ in range(2 if stage == 0 else 1):  # 3x3 stride-2 pad-1 convs: ceil division
            size = (math.ceil(size[0] / 2), math.ceil(size[1] / 2))
        shapes.append((batch, channels, *size))
    return shapes


# every arch at a square and an odd size; the detection sizes (the same code paths, larger
# grids) on the smallest arch
SHAPE_CASES = [(arch, size) for arch in ('l1', 'l3', 'l7') for size in ((224, 224), (97, 143))]
SHAPE_CASES += [('l1', size) for size in ((512, 512), (800, 1216))]


@pytest.mark.parametrize('arch, size', SHAPE_CASES)
@pytest.mark.compat
def test_output_shapes_any_size(arch, size):
    model = EfficientFormer(arch).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes(ARCHS[arch][0], *size)


def test_out_indices_and_no_norm_out():
    model = EfficientFormer(TINY, out_indices=(1, -1), norm_out=False).eval()
    outs = model(torch.rand(2, 3, 65, 40))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 9, 5), (2, 32, 3, 2)]
    assert all(isinstance(n, torch.nn.Identity) for n in model.out_norms)


def test_output_norms_are_groupnorm_of_stage_outputs():
    with_norm = EfficientFormer(TINY).eval()
    without = EfficientFormer(TINY, norm_out=False).eval()
    without.load_state_dict(with_norm.state_dict(), strict=False)
    x = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        for normed, raw, norm in zip(with_norm(x), without(x), with_norm.out_norms):
            manual = torch.nn.functional.group_norm(raw, 1, norm.weight, norm.bias)
            torch.testing.assert_close(normed, manual)


@pytest.mark.parametrize(
    'arch, layout',
    [
        ('l1', 'authors'),
        ('tiny', 'authors'),
        ('tiny', 'timm'),
        ('tiny', 'mmpretrain'),
        ('l3', 'timm'),
    ],
)
@pytest.mark.compat
def test_pretrained_layouts_reproduce_reference(tmp_path, arch, layout):
    """Weights in each public layout load fully and give the reference features."""
    state = authors_v1_state(arch)
    saved = {
        'authors': lambda s: {'model': s},
        'timm': authors_to_timm_v1,
        'mmpretrain': lambda s: {'state_dict': authors_to_mmpretrain_v1(s)},
    }[layout](state)
    path = tmp_path / 'weights.pth'
    torch.save(saved, path)
    widths, depths, num_attention = ARCHS[arch]
    model = EfficientFormer(
        dict(widths=widths, depths=depths, num_attention=num_attention),
        norm_out=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)),
    )
    from mmeffformer.checkpoint import load_pretrained_backbone

    report = load_pretrained_backbone(model, str(path), family='v1')
    assert report.missing == [] and report.unexpected == [] and report.mismatched == {}
    model.init_weights()
    model.eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        ours = model(x)
        reference = reference_v1_features(state, arch, x)
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_pretrained_wrong_arch_is_refused(tmp_path):
    path = tmp_path / 'l1.pth'
    torch.save({'model': authors_v1_state('tiny')}, path)
    model = EfficientFormer('l1', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='match this checkpoint'):
        model.init_weights()


def test_bad_arguments_name_what_is_accepted():
    with pytest.raises(ValueError, match=r"Unknown arch 'l2'.*'l1', 'l3', 'l7'"):
        EfficientFormer('l2')
    with pytest.raises(ValueError, match='exactly the keys'):
        EfficientFormer(dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='num_attention'):
        EfficientFormer(dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_attention=3))
    with pytest.raises(ValueError, match="attn_bias must be one of \\('relative', 'official'\\)"):
        EfficientFormer(TINY, attn_bias='learned')
    with pytest.raises(ValueError, match='attn_bias_size'):
        EfficientFormer(TINY, attn_bias='official')
    with pytest.raises(ValueError, match='out_indices'):
        EfficientFormer(TINY, out_indices=(0, 4))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\), got \(3, 32, 32\)'):
        EfficientFormer(TINY)(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r'got \(1, 1, 32, 32\)'):
        EfficientFormer(TINY)(torch.rand(1, 1, 32, 32))


def test_frozen_stages_stay_frozen_after_train():
    model = EfficientFormer(TINY, frozen_stages=2)
    model.train()
    frozen = [model.stem, model.stages[0], model.stages[1], model.out_norms[0], model.out_norms[1]]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in (model.stages[2], model.stages[3]):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    # frozen BN statistics do not move in a training step
    before = model.stages[1].blocks[0].mlp.fc1.norm.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    torch.testing.assert_close(model.stages[1].blocks[0].mlp.fc1.norm.running_mean, before)


def test_norm_eval_keeps_batchnorm_in_eval():
    model = EfficientFormer(TINY, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    assert model.stages[3].training


def test_with_cp_recomputes_blocks_with_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = EfficientFormer(TINY, norm_eval=True)
    checkpointed = EfficientFormer(TINY, norm_eval=True, with_cp=True)
    assert_with_cp_recomputes(plain, checkpointed, torch.rand(2, 3, 64, 48))


def test_syncbn_config_builds_and_reverts_to_bn_on_cpu():
    model = EfficientFormer(TINY, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model = revert_sync_batchnorm(model).eval()
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert len(model(torch.rand(1, 3, 64, 64))) == 4


def test_drop_path_rises_linearly_over_all_blocks():
    model = EfficientFormer(TINY, drop_path_rate=0.1)
    rates = [
        getattr(block.drop_path, 'drop_prob', 0.0)
        for stage in model.stages
        for block in stage.blocks
    ]
    total = sum(TINY['depths'])
    assert rates == pytest.approx([0.1 * i / (total - 1) for i in range(total)])
