_base_ = ['./_base_/semfpn_effformer_ade20k.py']

# ImageNet weights: mmpretrain's conversion of the authors' efficientformer_l3_300d.pth,
# the file the authors' recipe starts from.
checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/efficientformer/efficientformer-l3_3rdparty_in1k_20220915-466793d6.pth'

model = dict(
    backbone=dict(
        arch='l3',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[64, 128, 320, 512]),
)
