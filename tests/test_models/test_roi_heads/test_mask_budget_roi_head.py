"""MaskBudgetRoIHead: the mask head trains on at most k positives per image."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.models.roi_heads import POSITIVE_FIELDS, MaskBudgetRoIHead
from tests.helpers.downstream import build_from_config
from tests.helpers.tiny_configs import tiny_demo_config


def positives(count: int) -> SimpleNamespace:
    """A sampling result whose positive fields all encode the positive's index."""
    index = torch.arange(count)
    return SimpleNamespace(
        pos_inds=index,
        pos_priors=torch.stack([index.float()] * 4, 1),
        pos_is_gt=index % 2,
        pos_assigned_gt_inds=index * 10,
        pos_gt_labels=index % 3,
        neg_inds=torch.arange(5),
    )


def head(budget) -> MaskBudgetRoIHead:
    roi_head = MaskBudgetRoIHead.__new__(MaskBudgetRoIHead)
    roi_head.mask_positives_per_image = budget
    return roi_head


def test_a_random_subset_keeps_every_field_of_the_same_positives():
    torch.manual_seed(0)
    original = positives(20)
    kept = head(6)._within_budget(original)
    chosen = kept.pos_inds
    assert len(chosen) == 6 and len(set(chosen.tolist())) == 6
    assert torch.equal(kept.pos_priors[:, 0], chosen.float())
    assert torch.equal(kept.pos_assigned_gt_inds, chosen * 10)
    assert torch.equal(kept.pos_gt_labels, chosen % 3)
    assert torch.equal(kept.pos_is_gt, chosen % 2)
    assert set(POSITIVE_FIELDS) <= set(vars(kept))
    assert len(original.pos_inds) == 20 and kept.neg_inds is original.neg_inds  # not edited
    few = positives(4)
    assert head(6)._within_budget(few) is few and head(None)._within_budget(original) is original


@pytest.mark.parametrize('bad', [0, -2, 2.5, '8'])
def test_a_budget_that_is_not_a_positive_int_is_refused(bad):
    with pytest.raises(ValueError, match=f'positive int or None, got {bad!r}'):
        MaskBudgetRoIHead(mask_positives_per_image=bad)


@pytest.mark.parametrize('budget', [None, 2])
def test_the_mask_head_of_a_detector_sees_at_most_the_budget(tmp_path, budget):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=2, num_val=1, size=(128, 128))
    cfg = Config.fromfile(str(tiny_demo_config(tmp_path, data)))
    cfg.model.roi_head.update(type='mmeffformer.MaskBudgetRoIHead', mask_positives_per_image=budget)
    cfg.model.train_cfg.rcnn.sampler.num = 64
    detector = build_from_config(cfg, 'mmdet')
    assert type(detector.roi_head) is MaskBudgetRoIHead
    seen, positives_per_image = [], []
    detector.roi_head.mask_head.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    original = MaskBudgetRoIHead._within_budget

    def spy(self, result):
        positives_per_image.append(len(result.pos_inds))
        return original(self, result)

    MaskBudgetRoIHead._within_budget = spy
    try:
        from mmengine.runner import Runner

        loader = cfg.train_dataloader.copy()
        loader.update(num_workers=0, persistent_workers=False, batch_size=2)
        batch = detector.data_preprocessor(next(iter(Runner.build_dataloader(loader))), True)
        losses = detector(**batch, mode='loss')
    finally:
        MaskBudgetRoIHead._within_budget = original
    expected = sum(n if budget is None else min(n, budget) for n in positives_per_image)
    assert len(positives_per_image) == 2 and max(positives_per_image) > 2  # budget binds
    assert seen == [expected]
    assert torch.isfinite(losses['loss_mask']) and losses['loss_mask'] > 0
