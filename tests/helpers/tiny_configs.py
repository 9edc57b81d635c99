"""Tiny configs over the demo recipes, written into a test's tmp_path."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_models import TINY_V1
from tests.helpers.v1_reference import ARCHS

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, data: Path, batch_size: int) -> Path:
    # Everything that could differ between 1 process x 2 images and 2 processes x 1 image
    # is made per-sample: GroupNorm instead of BatchNorm, no dropout, no random augmentation.
    text = f"""
_base_ = ['{ROOT}/configs/demo/semfpn_effformer_l1_synthetic.py']
data_root = '{data}/ade/'
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(
        arch=dict(_delete_=True, widths=(8, 16, 24, 32), depths=(1, 1, 1, 2), num_attention=1),
        norm_cfg=dict(type='GN', num_groups=1), attn_bias_size=128),
    neck=dict(in_channels=[8, 16, 24, 32]),
    decode_head=dict(norm_cfg=dict(type='GN', num_groups=8), dropout_ratio=0.0),
)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data_root=data_root, pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=3, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0)
# plain SGD: Adam's normalisation would blow float noise on near-zero gradients up to lr
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.01))
"""
    path = tmp_path / f'ddp_b{batch_size}.py'
    path.write_text(text)
    return path


TINY = dict(zip(('widths', 'depths', 'num_attention'), ARCHS['tiny']))


def tiny_v2_backbone() -> str:
    """Config text of a ``backbone=dict(...)`` body: the tiny EfficientFormerV2 in place of
    the base config's backbone, bias tables for 128 px."""
    from tests.helpers.v2_reference import arch_dict

    return (
        f"_delete_=True, type='mmeffformer.EfficientFormerV2', arch={arch_dict('tiny')!r}, "
        'attn_bias_size=128'
    )


def batchnorm_config(root: Path, data: Path, v2: bool = False) -> Path:
    """The tiny segmentor config with BatchNorm in the backbone (deploy mode folds it)."""
    path = root / f'tiny_{"v2" if v2 else "v1"}_semfpn_bn.py'
    backbone = "norm_cfg=dict(_delete_=True, type='BN')"
    if v2:
        backbone = f"{tiny_v2_backbone()}, norm_cfg=dict(type='BN')"
    base = write_config(root, data, 1)
    path.write_text(f"_base_ = ['{base}']\nmodel = dict(backbone=dict({backbone}))\n")
    return path


def tiny_demo_config(tmp_path: Path, data: Path, v2: bool = False) -> Path:
    """The demo detection config with a tiny V1 (or V2) backbone, pointing at ``data``."""
    from tests.helpers.v2_reference import arch_dict

    coco = f'{data}/coco/'
    backbone = f'arch=dict(_delete_=True, **{TINY!r}), attn_bias_size=128'
    widths = list(TINY['widths'])
    if v2:
        backbone = tiny_v2_backbone()
        widths = list(arch_dict('tiny')['widths'])
    text = f"""
_base_ = ['{ROOT}/configs/demo/maskrcnn_effformer_l1_synthetic.py']
data_root = '{coco}'
model = dict(
    backbone=dict({backbone}),
    neck=dict(in_channels={widths}),
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50), rcnn=dict(max_per_img=20)),
)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
)
test_evaluator = val_evaluator
"""
    path = tmp_path / f'tiny_demo{"_v2" if v2 else ""}.py'
    path.write_text(text)
    return path


def tiny_segmentor_config(tmp_path: Path) -> Path:
    widths = list(TINY_V1['widths'])
    text = f"""
_base_ = ['{ROOT}/configs/demo/semfpn_effformer_l1_synthetic.py']
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_V1!r}), attn_bias_size=128),
    neck=dict(in_channels={widths}, out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16),
)
"""
    path = tmp_path / 'tiny_semfpn.py'
    path.write_text(text)
    return path
