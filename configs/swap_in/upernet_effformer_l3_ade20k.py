# Swap-in example: EfficientFormer-l3 in mmseg's UperNet. The decode head takes all four
# stage widths, the auxiliary head the stage-3 width.
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)
# ImageNet weights: mmpretrain's conversion of the authors' efficientformer_l3_300d.pth,
# the file the authors' recipe starts from.
checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/efficientformer/efficientformer-l3_3rdparty_in1k_20220915-466793d6.pth'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmeffformer.EfficientFormer',
        arch='l3',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320),
)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
)
