_base_ = ['./_base_/semfpn_effformer_ade20k.py']

# ImageNet weights: timm's conversion of the authors' eformer_l_450.pth, the file the
# authors' recipe starts from.
checkpoint_file = (
    'https://huggingface.co/timm/efficientformerv2_l.snap_dist_in1k/resolve/main/model.safetensors'
)

model = dict(
    backbone=dict(
        type='mmeffformer.EfficientFormerV2',
        arch='l',
        norm_eval=True,  # the V2 recipe freezes BN statistics
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[40, 80, 192, 384]),
)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=1e-6, begin=0, end=40000, by_epoch=False)]
