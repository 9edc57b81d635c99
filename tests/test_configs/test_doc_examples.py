"""The config examples in README.md and docs/configs.md build and run as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from tests.helpers.downstream import build_from_config, demo_det_batch

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / 'README.md', ROOT / 'docs' / 'configs.md')


def config_examples() -> list:
    """``(page, index, text)`` of every python block that is a config (has ``_base_``)."""
    found = []
    for page in PAGES:
        blocks = re.findall(r'```python\n(.*?)```', page.read_text(), flags=re.S)
        configs = [block for block in blocks if '_base_' in block]
        found += [(page.name, index, text) for index, text in enumerate(configs)]
    return found


def test_both_pages_have_a_config_example():
    assert {page for page, _, _ in config_examples()} == {p.name for p in PAGES}


@pytest.mark.parametrize('page, index, text', config_examples(), ids=lambda v: str(v)[:20])
def test_config_example_builds_and_runs_loss_and_predict(tmp_path, page, index, text):
    path = tmp_path / f'example_{index}.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.type.startswith('mmeffformer.')
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    cfg.model.backbone.init_cfg = None  # its URL cannot be downloaded on the test machines
    model = build_from_config(cfg, cfg.default_scope).train()
    data = demo_det_batch(model, shapes=((3, 96, 128),), num_classes=80)
    total, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(total)
    model.eval()
    with torch.no_grad():
        batch = demo_det_batch(model, shapes=((3, 96, 128),), training=False)
        assert len(model(**batch, mode='predict')) == 1
