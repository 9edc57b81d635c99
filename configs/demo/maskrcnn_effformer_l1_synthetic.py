# The demo: the l1 Mask R-CNN recipe on the generated shapes (tools/make_demo_data.py).
# Only the data root, class names, image scale and schedule differ from the recipe.
_base_ = ['../maskrcnn_effformer_l1_coco.py']

data_root = 'data/synthetic/coco/'
metainfo = dict(
    classes=('disc', 'box', 'triangle'), palette=[(220, 40, 40), (40, 200, 40), (40, 60, 220)]
)
image_scale = (160, 160)
max_iters = 150

model = dict(
    backbone=dict(init_cfg=None),  # no ImageNet weights can be downloaded here
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    # CPU budget: at most a handful of objects per image, so far fewer proposals and
    # sampled RoIs than COCO needs (the RoI head was most of a training step).
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=600, max_per_img=300),
        rcnn=dict(sampler=dict(num=128)),
    ),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# schedule: iterations instead of 12 epochs, a higher rate for training from scratch
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=10.0))
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters,
        eta_min=1e-5,
        by_epoch=False,
        begin=0,
        end=max_iters,
    ),
]
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2),
    logger=dict(interval=20),
)
log_processor = dict(by_epoch=False)
