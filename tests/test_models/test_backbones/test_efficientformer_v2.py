"""EfficientFormerV2: any input size, fidelity to the authors' and timm weights, arguments."""

from __future__ import annotations

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.checkpoint import load_pretrained_backbone
from mmeffformer.models import EfficientFormerV2
from tests.helpers.checkpointing import assert_with_cp_recomputes
from tests.helpers.v2_reference import (
    ARCHS,
    arch_dict,
    authors_to_timm_v2,
    authors_v2_state,
    reference_v2_features,
)
from tests.test_models.test_backbones.test_efficientformer import expected_shapes

WIDTHS = {
    's0': (32, 48, 96, 176),
    's1': (32, 48, 120, 224),
    's2': (32, 64, 144, 288),
    'l': (40, 80, 192, 384),
}


# every arch at a square and an odd size; the detection sizes (the same code paths, larger
# grids) on the smallest arch
SHAPE_CASES = [(arch, size) for arch in ('s0', 's1', 's2', 'l') for size in ((224, 224), (97, 143))]
SHAPE_CASES += [('s0', size) for size in ((512, 512), (800, 1216), (800, 1200))]


@pytest.mark.parametrize('arch, size', SHAPE_CASES)
@pytest.mark.compat
def test_output_shapes_any_size(arch, size):
    model = EfficientFormerV2(arch).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes(WIDTHS[arch], *size)


@pytest.mark.parametrize('size', [(800, 1200), (97, 143)])
def test_official_mode_runs_where_the_authors_code_cannot(size):
    model = EfficientFormerV2(arch_dict('tiny'), attn_bias='official', attn_bias_size=800).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes((8, 16, 24, 32), *size)


@pytest.mark.parametrize(
    'arch, layout', [('tiny', 'authors'), ('tiny', 'timm'), ('s0', 'authors'), ('s1', 'timm')]
)
@pytest.mark.compat
def test_pretrained_layouts_reproduce_reference(tmp_path, arch, layout):
    state = authors_v2_state(arch)
    path = tmp_path / 'weights.pth'
    torch.save({'model': state} if layout == 'authors' else authors_to_timm_v2(state), path)
    model = EfficientFormerV2(
        arch_dict(arch), init_cfg=dict(type='Pretrained', checkpoint=str(path))
    )
    report = load_pretrained_backbone(model, str(path), family='v2')
    assert report.missing == [] and report.unexpected == [] and report.mismatched == {}
    model.init_weights()
    # float64: random weights make this net amplify float32 rounding (a 1e-7
    # change at the strided-attention resize moves stage-4 outputs by ~1e-5 of
    # their scale), which would hide real differences in the tolerance.
    model.double().eval()
    state = {
        key: value.double() if value.is_floating_point() else value for key, value in state.items()
    }
    x = torch.rand(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        for got, want in zip(model(x), reference_v2_features(state, arch, x)):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * want.abs().max().item())


def test_v1_weights_into_v2_are_refused(tmp_path):
    from tests.helpers.v1_reference import authors_v1_state

    path = tmp_path / 'v1.pth'
    torch.save({'model': authors_v1_state('tiny')}, path)
    model = EfficientFormerV2(
        arch_dict('tiny'), init_cfg=dict(type='Pretrained', checkpoint=str(path))
    )
    with pytest.raises(
        ValueError, match='EfficientFormerV1 weights, but the model is EfficientFormerV2'
    ):
        model.init_weights()


def test_arch_errors_and_defaults():
    with pytest.raises(ValueError, match=r"Unknown arch 's3'.*'l', 's0', 's1', 's2'"):
        EfficientFormerV2('s3')
    bad = arch_dict('tiny')
    bad['mlp_ratios'] = ([2], [2], [2], [3, 2])
    with pytest.raises(ValueError, match='mlp_ratios'):
        EfficientFormerV2(bad)
    model = EfficientFormerV2('l')
    assert model.stages[3].blocks[-1].drop_path.drop_prob == pytest.approx(0.1)
    assert all(isinstance(n, torch.nn.Identity) for n in model.out_norms)
    assert len(EfficientFormerV2('s0', norm_out=True).out_norms[0].weight) == 32


def test_frozen_stages_norm_eval_syncbn_and_with_cp():
    model = EfficientFormerV2(arch_dict('tiny'), frozen_stages=1, norm_eval=True).train()
    assert not model.stem.training and not model.stages[0].training
    assert all(not p.requires_grad for p in model.stages[0].parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    assert model.stages[3].training

    sync = EfficientFormerV2(arch_dict('tiny'), norm_cfg=dict(type='SyncBN'))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.modules())
    assert len(revert_sync_batchnorm(sync).eval()(torch.rand(1, 3, 64, 64))) == 4

    torch.manual_seed(0)
    plain = EfficientFormerV2(arch_dict('tiny'), norm_eval=True)
    checkpointed = EfficientFormerV2(arch_dict('tiny'), norm_eval=True, with_cp=True)
    assert_with_cp_recomputes(plain, checkpointed, torch.rand(2, 3, 70, 50))


def test_reference_archs_are_the_real_ones():
    for name in ('s0', 's1'):
        widths, depths, num_attention, ratios = ARCHS[name]
        settings = EfficientFormerV2.arch_settings[name]
        assert tuple(settings['widths']) == widths and tuple(settings['depths']) == depths
        assert settings['num_attention'] == num_attention
        assert [list(r) for r in settings['mlp_ratios']] == [list(r) for r in ratios]
