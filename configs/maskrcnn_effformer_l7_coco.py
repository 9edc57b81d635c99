_base_ = ['./_base_/maskrcnn_effformer_coco.py']

checkpoint_file = 'weights/efficientformer_l7_300d.pth'  # the authors' ImageNet weights

model = dict(
    backbone=dict(
        arch='l7',
        layer_scale_init_value=1e-6,  # as the official detection l7
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
