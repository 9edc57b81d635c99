"""Multi-level RoI features by the matmul RoIAlign (multi-threaded, in the features' dtype)."""

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

    Differences from mmdet's: the RoIAlign is multi-threaded and runs in the features'
    dtype (bf16 under autocast, with no float32 round trip); RoI coordinates stay float32
    (mmdet casts them to the features' dtype, and bf16 rounds pixel coordinates above 128
    to whole pixels); the RoI features come back channels-last, in the dtype computed.
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
        out_h, out_w = self.roi_layers[0].output_size
        roi_feats = None
        for level, (feature, layer) in enumerate(zip(feats, self.roi_layers)):
            chosen = torch.nonzero(levels == level).squeeze(1)
            if not chosen.numel():
                continue
            pooled = layer(feature, rois[chosen])
            if chosen.numel() == rois.shape[0]:  # one level takes every RoI
                return pooled
            if roi_feats is None:  # channels-last like ``pooled``: plain copies
                shape = (rois.shape[0], out_h, out_w, self.out_channels)
                roi_feats = pooled.new_zeros(shape).permute(0, 3, 1, 2)
            roi_feats[chosen] = pooled
        if roi_feats is None:  # no RoIs
            return feats[0].new_zeros(rois.shape[0], self.out_channels, out_h, out_w)
        return roi_feats
