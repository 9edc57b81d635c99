"""A Mask R-CNN RoI head whose mask branch trains on a budget of positive RoIs."""

from __future__ import annotations

import copy
from typing import List, Optional

import torch
from mmdet.models.roi_heads import StandardRoIHead

from mmeffformer.registry import MODELS

#: What mmdet's mask branch reads of a sampling result, per positive RoI.
POSITIVE_FIELDS = ('pos_inds', 'pos_priors', 'pos_is_gt', 'pos_assigned_gt_inds', 'pos_gt_labels')


@MODELS.register_module()
class MaskBudgetRoIHead(StandardRoIHead):
    """mmdet's ``StandardRoIHead`` whose mask head trains on at most
    ``mask_positives_per_image`` of each image's positive RoIs (a random subset).

    The box head still sees every sampled RoI. On a CPU the mask head (four 3x3
    convolutions at 14x14 per RoI) dominated a training step once the sampler's
    positives were plentiful; the mask loss is a per-RoI mean, so a subset gives
    the same expected gradient. ``None`` keeps mmdet's behaviour.
    """

    def __init__(self, *args, mask_positives_per_image: Optional[int] = None, **kwargs) -> None:
        if mask_positives_per_image is not None and (
            not isinstance(mask_positives_per_image, int) or mask_positives_per_image < 1
        ):
            raise ValueError(
                'mask_positives_per_image must be a positive int or None, got '
                f'{mask_positives_per_image!r}'
            )
        super().__init__(*args, **kwargs)
        if mask_positives_per_image is not None and self.share_roi_extractor:
            raise ValueError(
                'mask_positives_per_image needs a mask_roi_extractor of its own '
                '(the shared extractor reuses the box features of every positive)'
            )
        self.mask_positives_per_image = mask_positives_per_image

    def _within_budget(self, result):  # noqa: ANN001, ANN202 - mmdet's SamplingResult
        count = result.pos_priors.shape[0]
        if self.mask_positives_per_image is None or count <= self.mask_positives_per_image:
            return result
        keep = torch.randperm(count, device=result.pos_priors.device)
        keep = keep[: self.mask_positives_per_image]
        kept = copy.copy(result)
        for name in POSITIVE_FIELDS:
            setattr(kept, name, getattr(result, name)[keep])
        return kept

    def mask_loss(self, x, sampling_results: List, bbox_feats, batch_gt_instances) -> dict:  # noqa: ANN001
        kept = [self._within_budget(result) for result in sampling_results]
        return super().mask_loss(x, kept, bbox_feats, batch_gt_instances)
