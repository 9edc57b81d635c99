_base_ = ['./_base_/semfpn_effformer_ade20k.py']

checkpoint_file = 'weights/efficientformer_l3_300d.pth'  # the authors' ImageNet weights

model = dict(
    backbone=dict(
        arch='l3',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
