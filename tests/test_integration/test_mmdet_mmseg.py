"""The backbones inside mmdet's Mask R-CNN and mmseg's Semantic FPN: build, loss, predict."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.downstream import (
    MASK_RCNN,
    SEM_FPN,
    build_from_config,
    demo_det_batch,
    demo_seg_batch,
    with_backbone,
)

BACKBONES = [
    (dict(type='mmeffformer.EfficientFormer', arch='l1'), (48, 96, 224, 448)),
    (dict(type='mmeffformer.EfficientFormerV2', arch='s0'), (32, 48, 96, 176)),
]


@pytest.mark.parametrize('backbone, widths', BACKBONES)
@pytest.mark.compat
def test_mask_rcnn_loss_and_predict(backbone, widths):
    cfg = with_backbone(MASK_RCNN, backbone, widths)
    model = build_from_config(cfg, 'mmdet')
    assert type(model.backbone).__name__ == backbone['type'].split('.')[1]
    data = demo_det_batch(model)
    model.train()
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.stem.conv1.conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        results = model(**demo_det_batch(model, training=False), mode='predict')
    assert len(results) == 2
    assert results[0].pred_instances.masks.shape[-2:] == (128, 160)


@pytest.mark.parametrize('backbone, widths', BACKBONES)
@pytest.mark.compat
def test_semantic_fpn_loss_and_predict(backbone, widths):
    cfg = with_backbone(SEM_FPN, backbone, widths)
    cfg.model.pretrained = None  # the base config's ResNet weights
    model = build_from_config(cfg, 'mmseg')
    data = demo_seg_batch(model, num_classes=150)
    model.train()
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    model.eval()
    with torch.no_grad():
        results = model(
            **demo_seg_batch(model, 150, shapes=((3, 128, 160),), training=False), mode='predict'
        )
    assert results[0].pred_sem_seg.data.shape == (1, 128, 160)


@pytest.mark.compat
def test_custom_imports_and_scope_prefix_in_a_config():
    """`custom_imports` plus the `mmeffformer.` prefix, as a user's config would say."""
    cfg = with_backbone(
        MASK_RCNN,
        dict(
            type='mmeffformer.EfficientFormer',
            arch=dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_attention=1),
        ),
        (8, 16, 24, 32),
        custom_imports=dict(imports=['mmeffformer.models'], allow_failed_imports=False),
    )
    from mmengine.utils import import_modules_from_strings

    import_modules_from_strings(**cfg.custom_imports)
    model = build_from_config(cfg, 'mmdet')
    assert model.backbone.out_indices == (0, 1, 2, 3)
