"""Build mmdet / mmseg models from their installed configs and feed them demo data."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

MASK_RCNN = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
SEM_FPN = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'


def build_from_config(cfg: Config, scope: str) -> torch.nn.Module:
    """Build ``cfg.model`` the way the runner does: in the config's default scope."""
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def with_backbone(base: str, backbone: dict, in_channels: Sequence[int], **extra) -> Config:
    """``base`` with its backbone replaced and the neck's input channels set."""
    cfg = Config.fromstring(f'_base_ = [{base!r}]', '.py')
    cfg.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(_delete_=True, **backbone), neck=dict(in_channels=list(in_channels))
            )
        )
    )
    cfg.merge_from_dict(extra)
    return cfg


def demo_det_batch(
    model: torch.nn.Module,
    shapes=((3, 128, 160), (3, 96, 128)),
    training: bool = True,
    num_classes: int = 80,
) -> Dict:
    from mmdet.testing import demo_mm_inputs

    packed = demo_mm_inputs(
        len(shapes),
        [list(s) for s in shapes],
        num_items=[2] * len(shapes),
        num_classes=num_classes,
        with_mask=True,
    )
    return model.data_preprocessor(packed, training)


def demo_seg_batch(
    model: torch.nn.Module,
    num_classes: int,
    shapes=((3, 128, 160), (3, 96, 128)),
    training: bool = True,
) -> Dict:
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(0)
    inputs: List[torch.Tensor] = []
    samples = []
    for shape in shapes:
        inputs.append(torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8))
        sample = SegDataSample()
        label = torch.randint(0, num_classes, (1, *shape[1:]), generator=gen)
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=shape[1:], ori_shape=shape[1:], pad_shape=shape[1:]))
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training)


def tiny_semantic_fpn(num_classes: int = 7) -> torch.nn.Module:
    """mmseg's Semantic FPN with a tiny EfficientFormer, 16-channel neck and head, in eval mode."""
    arch = dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_attention=1)
    cfg = with_backbone(
        SEM_FPN, dict(type='mmeffformer.EfficientFormer', arch=arch), arch['widths']
    )
    cfg.model.pretrained = None  # the base config's ResNet weights
    cfg.model.neck.out_channels = 16
    cfg.model.decode_head.update(in_channels=[16] * 4, channels=16, num_classes=num_classes)
    return build_from_config(cfg, 'mmseg').eval()
