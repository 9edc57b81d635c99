"""The README's first command, in its smoke form: data, both trainings, metrics, report."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from mmeffformer.demo.figures import TITLE_HEIGHT, read_scalars
from mmeffformer.utils import cpu_has_native_bf16
from mmeffformer.utils.cpu_facts import cpu_info
from tests.helpers.scripts import load_script

pytestmark = pytest.mark.expensive
ROOT = Path(__file__).resolve().parents[2]


def test_demo_smoke_trains_evaluates_and_reports(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--smoke', '--out', str(tmp_path),
         '--seed', '7', '--precision', 'float32'],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    # the terminal: progress lines and the verdict table, not mmengine's log
    assert 'mmengine - INFO' not in run.stdout and 'Iter(train)' not in run.stdout
    assert '[1/2] Semantic FPN: training iteration 2/2' in run.stdout
    assert '[2/2] Mask R-CNN: held-out after iteration 2: box AP' in run.stdout
    assert re.search(r'^metric +value +target +met\?$', run.stdout, re.M)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    for name in ('box AP', 'mask AP', 'mIoU'):
        value = metrics['metrics'][name]
        assert 0 <= value <= 100, name
        verdict = 'yes' if value >= {'mIoU': 85.0}.get(name, 45.0) else 'NO'
        assert re.search(rf'^{name} +{value:.1f} +\d+\.0 +{verdict}$', run.stdout, re.M), name
    assert metrics['seed'] == 7 and metrics['precision'] == 'float32'
    # ... while the full log stays in the work dirs
    for phase in ('semfpn', 'maskrcnn'):
        (log,) = (tmp_path / phase).glob('*/*.log')
        assert 'Iter(train) [2/2]' in log.read_text(), phase
    # per-class results of both models, in the report too
    assert set(metrics['per_class']['IoU']) == {'background', 'disc', 'box', 'triangle'}
    assert set(metrics['per_class']['box AP']) == {'disc', 'box', 'triangle'}
    assert set(metrics['per_class']['mask AP']) == {'disc', 'box', 'triangle'}
    report = (tmp_path / 'report.md').read_text()
    assert cpu_info()['model'] in report and 'precision: **float32**' in report
    assert '| triangle |' in report and '| **whole demo** |' in report
    # titled panels: 2 held-out images, 2 (detection) or 3 (segmentation) panels of 128 px
    for name, panels in (('predictions_maskrcnn.png', 2), ('predictions_semfpn.png', 3)):
        picture = cv2.imread(str(tmp_path / name))
        assert picture.shape[0] == 2 * (128 + TITLE_HEIGHT) + 4, name
        assert picture.shape[1] >= panels * 128, name
    # the curves' data: held-out metrics at the iterations they were measured
    for phase, key in (('semfpn', 'mIoU'), ('maskrcnn', 'box/bbox_mAP')):
        (scalars,) = (tmp_path / phase).glob('*/vis_data/scalars.json')
        assert [step for step, _ in read_scalars(scalars)[key]] == [1, 2], phase
    curves = cv2.imread(str(tmp_path / 'training_curves.png'))
    assert curves is not None and curves.shape[1] > curves.shape[0]
    # both trained models exported and evaluated in each runtime, next to PyTorch
    rows = metrics['deployment']
    # with the quantize extra, each model's INT8 IR in OpenVINO and INT8 program in PyTorch
    files = ['pytorch', 'onnxruntime', 'openvino']
    quantize_extra = all(importlib.util.find_spec(m) for m in ('nncf', 'torchao'))
    files += ['openvino int8', 'pytorch int8'] if quantize_extra else []
    assert [
        (r['model'], r['backend'] + (' int8' if r['precision'] == 'int8' else '')) for r in rows
    ] == [(model, backend) for model in ('Semantic FPN', 'Mask R-CNN') for backend in files]
    for first in (0, len(files)):
        pytorch, onnxruntime = rows[first], rows[first + 1]
        assert set(pytorch['metrics']) == set(onnxruntime['metrics'])
        for name, value in pytorch['metrics'].items():  # fp32 in both
            assert abs(onnxruntime['metrics'][name] - value) <= 0.1, (name, rows)
    assert 'evaluated in each runtime' in run.stdout
    assert re.search(r'^Mask R-CNN +openvino +\S+ +[\d.]+ +[\d.]+ +- +\d+$', run.stdout, re.M)
    assert '## Exported models in each runtime' in report
    assert (tmp_path / 'maskrcnn.onnx').is_file() and (tmp_path / 'semfpn.onnx').is_file()


@pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason='bf16 is emulated on this CPU (no AMX / AVX512-BF16): PyTorch runs bf16 convolutions '
    'in its slow reference path and this run takes ~6.5 min (the float32 one: 27 s); the bf16 training '
    'and evaluation paths are covered at small sizes by tests/test_engine/test_amp.py and '
    'tests/test_tools/test_amp_options.py',
)
def test_demo_smoke_in_bf16_trains_and_evaluates_under_autocast(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--smoke', '--out', str(tmp_path),
         '--precision', 'bfloat16', '--no-export'],  # the exports are the float32 run's
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['precision'] == 'bfloat16'
    assert metrics['deployment'] == [] and 'exporting both models' not in run.stdout
    assert not list(tmp_path.glob('*.onnx'))
    assert all(0 <= metrics['metrics'][name] <= 100 for name in ('box AP', 'mask AP', 'mIoU'))
    for phase in ('semfpn', 'maskrcnn'):  # the runs' own config dumps
        (dumped,) = (tmp_path / phase).glob('*/vis_data/config.py')
        text = dumped.read_text()
        assert "type='mmeffformer.CPUAutocastOptimWrapper'" in text, phase
        assert "type='mmeffformer.AutocastValLoop'" in text, phase


def test_no_int8_leaves_the_int8_rows_out(monkeypatch):
    demo = load_script(ROOT / 'tools' / 'demo.py')
    monkeypatch.setattr(demo.importlib.util, 'find_spec', lambda name: object())
    assert demo.int8_calibration_images(smoke=False, no_int8=False) == 32
    assert demo.int8_calibration_images(smoke=True, no_int8=False) == 2
    assert demo.int8_calibration_images(smoke=True, no_int8=True) == 0
    monkeypatch.setattr(demo.importlib.util, 'find_spec', lambda name: None)  # no extra
    assert demo.int8_calibration_images(smoke=False, no_int8=False) == 0


def test_executorch_rows_without_the_export_step_are_refused(capsys, monkeypatch):
    demo = load_script(ROOT / 'tools' / 'demo.py')
    monkeypatch.setattr(demo, 'write_dataset', lambda *a, **k: pytest.fail('the demo started'))
    with pytest.raises(SystemExit) as stop:
        demo.main(['--no-export', '--executorch', '--out', 'unused'])
    assert stop.value.code == 2
    assert '--executorch adds rows to the export step, which --no-export' in capsys.readouterr().err
