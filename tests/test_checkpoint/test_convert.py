"""Conversion of the authors' downstream files; official mode reproduces their outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmeffformer.checkpoint import convert_checkpoint, detect_layout, to_ours
from mmeffformer.models import EfficientFormer, EfficientFormerV2
from tests.helpers.scripts import run_tool
from tests.helpers.v1_reference import (
    authors_v1_state,
    official_bias_fn,
    reference_v1_features,
    to_downstream_v1,
)
from tests.helpers.v2_reference import (
    arch_dict,
    authors_v2_state,
    reference_v2_features,
    to_downstream_v2,
)

ROOT = Path(__file__).resolve().parents[2]
TINY_V1 = dict(widths=(8, 16, 24, 32), depths=(1, 1, 2, 3), num_attention=2)


def strip_backbone(state):
    return {k[len('backbone.') :]: v for k, v in state.items() if k.startswith('backbone.')}


def test_v1_downstream_file_converts_loads_strictly_and_matches_reference():
    grid = 4  # a table learned for 128 px images
    downstream = to_downstream_v1(authors_v1_state('tiny'), grid)
    converted = convert_checkpoint({'state_dict': downstream})
    info = converted['meta']['mmeffformer']
    assert info['attn_bias'] == 'official' and info['attn_bias_size'] == 128
    state = converted['state_dict']
    assert (
        state['neck.lateral_convs.0.conv.weight'] is downstream['neck.lateral_convs.0.conv.weight']
    )
    model = EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128).eval()
    model.load_state_dict(strip_backbone(state), strict=True)
    x = torch.rand(1, 3, 160, 96)  # stage-4 grid 5 x 3: the dense bias is resized to 15 x 15
    authors = strip_backbone(downstream)
    with torch.no_grad():
        ours = model(x)
        again = model(x)
        reference = reference_v1_features(
            authors, 'tiny', x, out_norm=True, table_key='attention_biases_seg',
            bias_fn=official_bias_fn(grid),
        )  # fmt: skip
    for got, repeat, want in zip(ours, again, reference):
        assert torch.equal(got, repeat)  # deterministic
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('size', [(128, 128), (192, 128)])
def test_v2_downstream_file_matches_reference_at_multiples_of_32(size):
    grid = 4  # tables for 128 px: stage-3/4 attention 4 x 4, downsampling keys 8 x 8
    downstream = to_downstream_v2(authors_v2_state('tiny'), grid)
    converted = convert_checkpoint({'state_dict': downstream})
    assert converted['meta']['mmeffformer']['attn_bias_size'] == 128
    model = EfficientFormerV2(arch_dict('tiny'), attn_bias='official', attn_bias_size=128).eval()
    model.load_state_dict(strip_backbone(converted['state_dict']), strict=True)
    x = torch.rand(1, 3, *size)
    fns = (official_bias_fn(grid), official_bias_fn(2 * grid, query_stride=2))
    with torch.no_grad():
        ours = model(x)
        reference = reference_v2_features(
            strip_backbone(downstream), 'tiny', x, fns, table_key='attention_biases_seg'
        )
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_classification_files_give_backbone_only_files():
    result = convert_checkpoint({'model': authors_v2_state('tiny')})
    state = result['state_dict']
    assert not any(k.startswith(('head', 'dist_head', 'norm.', 'backbone.')) for k in state)
    model = EfficientFormerV2(arch_dict('tiny'))
    model.load_state_dict(state, strict=True)


def test_a_tensor_that_cannot_be_placed_fails_loudly():
    state = authors_v1_state('tiny')
    state['network.2.0.mystery'] = torch.zeros(3)
    layout, family = detect_layout(state)
    with pytest.raises(KeyError, match='network.2.0.mystery'):
        to_ours(state, layout, family)


def test_a_tampered_offset_index_fails_loudly():
    state = authors_v1_state('tiny')
    key = next(k for k in state if k.endswith('attention_bias_idxs'))
    state[key] = state[key].flip(0)
    with pytest.raises(ValueError, match='offset index'):
        to_ours(state, 'authors', 'v1')


def test_unknown_layout_is_named():
    with pytest.raises(ValueError, match='Unrecognised checkpoint layout'):
        detect_layout({'conv.weight': torch.zeros(1)})


def test_convert_weights_tool(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': to_downstream_v1(authors_v1_state('tiny'), 4)}, src)
    run = run_tool('convert_weights.py', str(src), str(dst)).check()
    assert "attn_bias='official', attn_bias_size=128" in run.stdout
    saved = torch.load(dst, weights_only=False)
    assert 'backbone.stages.3.blocks.1.attn.bias.table' in saved['state_dict']
    missing = run_tool('convert_weights.py', str(tmp_path / 'no.pth'), str(dst))
    assert missing.returncode != 0 and 'no such checkpoint file' in missing.stderr
