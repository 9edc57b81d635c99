"""Multi-level RoI features by the matmul RoIAlign (multi-threaded, bf16 under autocast)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from torch import Tensor, nn

from mmeffformer.models.layers.roi_align import MatmulRoIAlign
from mmeffformer.registry import MODELS


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
