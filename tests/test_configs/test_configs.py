"""Every recipe config builds, runs one loss and one predict; train.py names missing data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from tests.helpers.downstream import build_from_config, demo_det_batch, demo_seg_batch
from tests.helpers.scripts import run_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / 'configs').glob('*.py'))
EXAMPLES = sorted((ROOT / 'configs' / 'swap_in').glob('*.py')) + sorted(
    (ROOT / 'configs' / 'demo').glob('*.py')
)


def test_every_variant_has_both_recipes():
    names = {p.name for p in CONFIGS}
    for variant in ('l1', 'l3', 'l7', 'v2-s0', 'v2-s1', 'v2-s2', 'v2-l'):
        assert f'maskrcnn_effformer_{variant}_coco.py' in names
        assert f'semfpn_effformer_{variant}_ade20k.py' in names


def test_recipes_use_the_official_bias_and_pretrained_weights():
    for path in CONFIGS:
        backbone = Config.fromfile(str(path)).model.backbone
        assert backbone.attn_bias == 'official', path.name
        assert backbone.attn_bias_size == (800 if 'coco' in path.name else 512), path.name
        assert backbone.init_cfg.type == 'Pretrained', path.name


@pytest.mark.parametrize('path', CONFIGS + EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.compat
def test_config_builds_and_runs_loss_and_predict(path):
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no pretrained file here; random weights
    detection = cfg.default_scope == 'mmdet'
    model = build_from_config(cfg, cfg.default_scope)
    model.train()
    if detection:
        num_classes = 3 if 'synthetic' in path.name else 80
        data = demo_det_batch(model, shapes=((3, 96, 128),), num_classes=num_classes)
    else:
        num_classes = 4 if 'synthetic' in path.name else 150
        data = demo_seg_batch(model, num_classes, shapes=((3, 96, 128),) * 2)  # PPM BN needs 2
    total, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(total)
    model.eval()
    with torch.no_grad():
        if detection:
            out = model(
                **demo_det_batch(model, shapes=((3, 96, 128),), training=False), mode='predict'
            )
        else:
            out = model(
                **demo_seg_batch(model, num_classes, shapes=((3, 96, 128),), training=False),
                mode='predict',
            )
    assert len(out) == 1


def test_train_names_the_missing_dataset(tmp_path):
    run = run_tool(
        'train.py',
        str(ROOT / 'configs' / 'maskrcnn_effformer_l3_coco.py'),
        '--work-dir',
        str(tmp_path),
        cwd=tmp_path,
    )
    assert run.returncode != 0
    assert "Dataset root 'data/coco/' (CocoDataset) does not exist" in run.stderr
