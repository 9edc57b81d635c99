"""The benchmark report: its ratios computed from the measured figures, and the
published docs/benchmarks.md exactly what the saved docs/benchmarks.json renders to."""

from __future__ import annotations

import json

from tests.helpers.scripts import ROOT, load_script


def fake_results() -> dict:
    backbone = dict(
        gflops=50.0, eval=500.0, deploy=400.0, compiled=320.0, onnxruntime=300.0, openvino=160.0
    )
    rows = [
        dict(model=name, size=size, **backbone)
        for name in ('l1', 'ResNet-50')
        for size in ('512x512', '800x1216')
    ]
    profile = [dict(op='aten::mkldnn_convolution', ms=80.0, share=0.8, calls=10)]
    profile.append(dict(op='aten::gelu', ms=20.0, share=0.2, calls=5))
    return dict(
        machine=dict(
            cpu='cpu',
            cores=2,
            threads=2,
            torch='t',
            onnxruntime='o',
            repeats=5,
            matmul_gflops=200.0,
            date='d',
            minutes=1.0,
        ),  # fmt: skip
        targets=dict(
            l1_512_eval=130.0,
            l1_512_deploy=100.0,
            repeats_512=21,
            repeats_large=7,
            l1_det_gflops=50.0,
            matmul_gflops=100.0,
            det_eval=500.0,
            det_deploy=250.0,
            det_resnet50=1000.0,
            det_compiled=200.0,
            det_resnet50_compiled=700.0,
        ),  # fmt: skip
        backbones=rows,
        profile=dict(eval=profile, deploy=profile),
        sizes=[dict(model='l1', side=256, eval=10.0, deploy=9.0)],
        whole=[dict(model='Semantic FPN l1', size='512x512', eval=30.0, deploy=20.0)],
        train=dict(step_ms=1000.0, rss_before_mb=100.0, rss_peak_mb=400.0),
        default_allocator=dict(eval=700.0),
        command='python benchmarks/run_benchmarks.py',
    )


def test_benchmark_report_computes_the_target_ratios(tmp_path):
    script = load_script(ROOT / 'benchmarks' / 'run_benchmarks.py')
    source, out = tmp_path / 'results.json', tmp_path / 'benchmarks.md'
    source.write_text(json.dumps(fake_results()))
    assert script.main(['--render', str(source), '--out', str(out)]) == 0
    text = out.read_text()
    assert '= **1.30x**.' in text  # 130 / 100
    assert '**2.00x**, / 250 ms deploy = **4.00x**' in text  # 1000 / 500, 1000 / 250
    assert '50.0 GFLOP / 250 ms = 200.0 GFLOP/s = **200%**' in text
    assert 'at most 1.25x at this size' in text  # convolutions are 80% of the forward
    assert 'both compiled: 700 ms / 200 ms = **3.50x**' in text
    assert '| 320.0 | 300.0 | 160.0 | 1.25 | 2.00 |' in text  # compiled 320 / OpenVINO 160


def test_the_published_report_is_the_render_of_its_saved_measurements(tmp_path):
    script = load_script(ROOT / 'benchmarks' / 'run_benchmarks.py')
    out = tmp_path / 'benchmarks.md'
    assert script.main(['--render', str(ROOT / 'docs' / 'benchmarks.json'), '--out', str(out)]) == 0
    assert out.read_text() == (ROOT / 'docs' / 'benchmarks.md').read_text()
