# Semantic FPN on ADE20K with an EfficientFormer backbone: the authors' 40k recipe.
_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmeffformer.EfficientFormer',
        attn_bias='official',  # as the authors' released ADE20K checkpoints
        attn_bias_size=512,
    ),
)

# AdamW 2e-4, wd 1e-4, 40k iterations, poly 0.9; 32 images per step as 8 GPUs x 4.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
train_dataloader = dict(batch_size=4)

# Test: fit (2048, 512) keeping the ratio, then stretch each side to a multiple of 32.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmeffformer.AlignResize', scale=(2048, 512), size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
