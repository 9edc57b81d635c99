"""mmdet RoI components for Mask R-CNN training on a CPU budget.

- :class:`MaskBudgetRoIHead`: how many positive RoIs train the mask head;
- :class:`MatmulRoIExtractor`: multi-level RoI features by the matmul RoIAlign.
"""

from __future__ import annotations

import copy
from typing import List, Optional, Sequence

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from torch import Tensor, nn

from mmeffformer.models.layers.roi_align import MatmulRoIAlign
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


@MODELS.register_module()
class MatmulRoIExtractor(SingleRoIExtractor):
    """mmdet's ``SingleRoIExtractor`` (same arguments, same level mapping) whose
    ``roi_layer=dict(type='RoIAlign', ...)`` runs as :class:`MatmulRoIAlign`.

    Two differences from mmdet's, both for CPU training: the RoIAlign is multi-threaded
    and runs in bf16 under autocast, and RoI coordinates stay float32 (mmdet casts them
    to the features' dtype, and bf16 rounds pixel coordinates above 128 to whole pixels).
    """

    def build_roi_layers(self, layer_cfg: dict, featmap_strides: List[int]) -> nn.ModuleList:
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type')
        if layer_type not in ('RoIAlign', MatmulRoIAlign):
            raise ValueError(
                f"MatmulRoIExtractor computes roi_layer type 'RoIAlign' only, got {layer_type!r}"
            )
        return nn.ModuleList(MatmulRoIAlign(spatial_scale=1 / s, **cfg) for s in featmap_strides)

    def forward(
        self, feats: Sequence[Tensor], rois: Tensor, roi_scale_factor: Optional[float] = None
    ) -> Tensor:
        levels = self.map_roi_levels(rois, len(feats))
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        out_size = self.roi_layers[0].output_size
        roi_feats = feats[0].new_zeros(rois.shape[0], self.out_channels, *out_size)
        for level, (feature, layer) in enumerate(zip(feats, self.roi_layers)):
            chosen = torch.nonzero(levels == level).squeeze(1)
            if chosen.numel():
                roi_feats[chosen] = layer(feature, rois[chosen]).to(roi_feats.dtype)
        return roi_feats
