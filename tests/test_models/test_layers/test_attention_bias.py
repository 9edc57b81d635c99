"""Attention biases: offset-only at any grid, exact at the pretraining grid, cached safely."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmeffformer.models.layers import OfficialResizedBias, RelativeOffsetBias
from tests.helpers.v1_reference import bias_index
from tests.helpers.v2_reference import downsample_bias_index


def random_table(module: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.table.copy_(torch.randn(module.table.shape, generator=gen))
    return module.table.detach().clone()


def test_relative_is_the_stored_table_at_the_pretraining_grid():
    bias = RelativeOffsetBias(num_heads=8, pretrain_grid=7)
    table = random_table(bias)
    assert torch.equal(bias((7, 7), (7, 7)), table[:, bias_index(7)])


def test_relative_downsampling_bias_at_pretraining_grid():
    bias = RelativeOffsetBias(num_heads=8, pretrain_grid=14, query_stride=2)
    table = random_table(bias)
    assert torch.equal(bias((7, 7), (14, 14)), table[:, downsample_bias_index(7, 14)])


@pytest.mark.parametrize('grid', [(5, 11), (12, 3), (25, 38)])
def test_relative_bias_depends_only_on_offset(grid):
    bias = RelativeOffsetBias(num_heads=4, pretrain_grid=7)
    random_table(bias)
    values = bias(grid, grid)
    h, w = grid
    ys, xs = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    offset_y = (ys[:, None] - ys[None, :]).abs()  # (query, key)
    offset_x = (xs[:, None] - xs[None, :]).abs()
    offset = offset_y * w + offset_x
    # every (query, key) pair against the first pair in row-major order with its offset
    pairs = torch.arange(offset.numel()).view_as(offset)
    first = torch.full((h * w,), offset.numel()).scatter_reduce(
        0, offset.flatten(), pairs.flatten(), 'amin'
    )
    canonical = values.flatten(1)[:, first[offset]]
    assert torch.equal(values, canonical)
    by_offset = {(0, 0): values[:, 0, 0], (h - 1, w - 1): values[:, 0, h * w - 1]}
    # the ends of the offset range are the stored table's ends (align_corners=True)
    table = bias.table.detach().view(4, 7, 7)
    assert torch.allclose(by_offset[(0, 0)], table[:, 0, 0], atol=1e-6)
    assert torch.allclose(by_offset[(h - 1, w - 1)], table[:, 6, 6], atol=1e-6)


def test_relative_resize_is_bicubic_over_the_offset_table():
    bias = RelativeOffsetBias(num_heads=2, pretrain_grid=7)
    table = random_table(bias).view(2, 7, 7)
    values = bias((4, 10), (4, 10))
    resized = F.interpolate(table[None], size=(4, 10), mode='bicubic', align_corners=True)[0]
    # query (0, 0) sees offset (ky, kx) at key (ky, kx)
    torch.testing.assert_close(values[:, 0, :].view(2, 4, 10), resized)


def test_official_bias_resizes_the_dense_matrix_bicubically():
    bias = OfficialResizedBias(num_heads=8, key_grid=4)
    table = random_table(bias)
    assert bias.table.shape == (8, 16)
    dense = table[:, bias_index(4)]
    assert torch.equal(bias((4, 4), (4, 4)), dense)
    expected = F.interpolate(dense[None], size=(15, 15), mode='bicubic', align_corners=False)[0]
    torch.testing.assert_close(bias((3, 5), (3, 5)), expected)
    # the authors call interpolate also at the training size: identical values
    same = F.interpolate(dense[None], size=(16, 16), mode='bicubic', align_corners=False)[0]
    assert torch.equal(same, dense)


def test_official_downsampling_bias_uses_the_half_grid_queries():
    bias = OfficialResizedBias(num_heads=8, key_grid=6, query_stride=2)
    table = random_table(bias)
    assert torch.equal(bias((3, 3), (6, 6)), table[:, downsample_bias_index(3, 6)])


def test_eval_cache_reuses_and_is_never_stale():
    bias = RelativeOffsetBias(num_heads=2, pretrain_grid=7).eval()
    random_table(bias)
    with torch.no_grad():
        first = bias((5, 6), (5, 6))
        assert bias((5, 6), (5, 6)) is first  # no recomputation for a seen size
        with torch.no_grad():
            bias.table.mul_(2)  # in-place update: the cached entry is outdated
        updated = bias((5, 6), (5, 6))
        torch.testing.assert_close(updated, first * 2)
        bias.load_state_dict({'table': torch.zeros(2, 49)})
        assert torch.count_nonzero(bias((5, 6), (5, 6))) == 0
    bias.train()
    assert not bias._cache
    # with gradients wanted, the bias is recomputed so the table gets its gradient
    bias.eval()
    bias((5, 6), (5, 6)).sum().backward()
    assert bias.table.grad is not None
