# Mask R-CNN + FPN on COCO with an EfficientFormer backbone: the authors' 1x recipe.
# Variant configs set the backbone arch, the neck's input channels and the checkpoint.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmeffformer.EfficientFormer',
        attn_bias='official',  # as the authors' released COCO checkpoints
        attn_bias_size=800,
    ),
    # mmdet's level mapping and RoIAlign semantics; on a CPU the RoIAlign is multi-threaded
    # and runs in the features' dtype (mmcv's kernel: one thread, float32), on a GPU it is
    # mmcv's kernel (`python -m benchmarks roi_align` compares them)
    roi_head=dict(
        bbox_roi_extractor=dict(type='mmeffformer.MatmulRoIExtractor'),
        mask_roi_extractor=dict(type='mmeffformer.MatmulRoIExtractor'),
    ),
)

# AdamW 2e-4, 12 epochs, steps at 8 and 11, 500-iteration linear warm-up from 1e-6.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# 16 images per step, as 8 GPUs x 2; `--auto-scale-lr` rescales for other batch sizes.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
