# Swap-in example: EfficientFormerV2-S2 in mmdet's Cascade Mask R-CNN.
_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)
# ImageNet weights: timm's conversion of the authors' eformer_s2_450.pth, the file the
# authors' recipe starts from.
checkpoint_file = (
    'https://huggingface.co/timm/efficientformerv2_s2.snap_dist_in1k/resolve/main/model.safetensors'
)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmeffformer.EfficientFormerV2',
        arch='s2',
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
    ),
    neck=dict(in_channels=[32, 64, 144, 288]),
    # multi-threaded RoIAlign in the features' dtype on a CPU, mmcv's on a GPU
    roi_head=dict(
        bbox_roi_extractor=dict(type='mmeffformer.MatmulRoIExtractor'),
        mask_roi_extractor=dict(type='mmeffformer.MatmulRoIExtractor'),
    ),
)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05)
)
