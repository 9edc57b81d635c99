"""The README's first command, in its smoke form: data, both trainings, metrics, report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from mmeffformer.datasets.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[2]


def test_scenes_are_deterministic_and_labelled():
    a, b = make_scene(5), make_scene(5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.semantic, b.semantic)
    assert not np.array_equal(a.image, make_scene(6).image)
    for label, mask in a.instances:
        assert np.all(a.semantic[mask] == label)  # visible parts carry the instance's class


def test_demo_smoke_trains_evaluates_and_reports(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--smoke', '--out', str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    for key in ('box AP', 'box AP50', 'mask AP', 'mIoU'):
        assert 0 <= metrics[key] <= 100, key
    assert set(metrics['per-class IoU']) == {'background', 'disc', 'box', 'triangle'}
    assert 'mIoU' in (tmp_path / 'report.md').read_text()
    for name in ('predictions_maskrcnn.png', 'predictions_semfpn.png'):
        picture = cv2.imread(str(tmp_path / name))
        assert picture is not None and picture.shape[0] >= 2 * 128, name
