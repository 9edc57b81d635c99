_base_ = ['./_base_/semfpn_effformer_ade20k.py']

# ImageNet weights: mmpretrain's conversion of the authors' 1000-epoch L1
# (efficientformer_l1_1000d.pth). The authors' recipe starts from the 300-epoch file,
# which is published on Google Drive only (docs/model_zoo.md).
checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/efficientformer/efficientformer-l1_3rdparty_in1k_20220915-cc3e1ac6.pth'

model = dict(
    backbone=dict(
        arch='l1',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[48, 96, 224, 448]),
)
