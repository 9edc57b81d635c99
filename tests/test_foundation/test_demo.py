"""The README's first command, in its smoke form: trains, evaluates, writes a report."""

from __future__ import annotations

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


def test_demo_smoke_produces_report_and_picture(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--smoke', '--out', str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert re.search(r'\[   3/3\] loss \d+\.\d+', run.stdout)
    report = (tmp_path / 'report.md').read_text()
    miou = float(re.search(r'mIoU on 4 held-out scenes: ([\d.]+)', report)[1])
    assert 0 <= miou <= 100
    picture = cv2.imread(str(tmp_path / 'predictions.png'))
    assert picture.shape == (4 * 128, 3 * 128, 3)
