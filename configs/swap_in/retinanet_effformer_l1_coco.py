# Swap-in example: EfficientFormer-l1 in mmdet's RetinaNet. Three changes: the backbone,
# the neck's input channels, and (optionally) the optimizer the backbone was tuned with.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)
# ImageNet weights: mmpretrain's conversion of the authors' 1000-epoch L1
# (efficientformer_l1_1000d.pth). The authors' recipe starts from the 300-epoch file,
# which is published on Google Drive only (docs/model_zoo.md).
checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/efficientformer/efficientformer-l1_3rdparty_in1k_20220915-cc3e1ac6.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmeffformer.EfficientFormer',
        arch='l1',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[48, 96, 224, 448]),
)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4)
)
