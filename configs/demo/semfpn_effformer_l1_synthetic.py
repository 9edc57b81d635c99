# The demo: the l1 Semantic FPN recipe on the generated shapes (tools/make_demo_data.py).
# Only the data root, class names, image scale and schedule differ from the recipe.
_base_ = ['../semfpn_effformer_l1_ade20k.py']

data_root = 'data/synthetic/ade/'
metainfo = dict(
    classes=('background', 'disc', 'box', 'triangle'),
    palette=[(0, 0, 0), (220, 40, 40), (40, 200, 40), (40, 60, 220)],
)
crop_size = (128, 128)
max_iters = 100

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),  # no ImageNet weights can be downloaded here
    decode_head=dict(num_classes=4),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmeffformer.AlignResize', scale=(1024, 256), size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# ADE20KDataset only takes subsets of ADE's 150 class names; the generic dataset reads
# the same layout with the ADE20K conventions (.jpg / .png, 0 = ignore).
ade_layout = dict(
    type='BaseSegDataset',
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True,
    data_root=data_root,
    metainfo=metainfo,
)
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(**ade_layout, pipeline=train_pipeline)
)
val_dataloader = dict(num_workers=1, dataset=dict(**ade_layout, pipeline=test_pipeline))
test_dataloader = val_dataloader
# mmseg's IoUMetric that also returns the per-class IoUs (for the demo's report)
val_evaluator = dict(type='mmeffformer.ClasswiseIoUMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3, fused=True))  # fused: same update, one kernel
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2),
    logger=dict(interval=20),
)
