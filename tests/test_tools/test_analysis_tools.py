"""FLOP counting, tools/benchmark.py, tools/get_flops.py and the benchmark report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from mmeffformer.analysis import count_flops
from tests.test_tools.test_export_onnx import tiny_segmentor_config

ROOT = Path(__file__).resolve().parents[2]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_of_a_convolution_and_a_linear_layer():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    linear = torch.nn.Linear(8, 5)
    x = torch.rand(2, 3, 10, 12)
    # a multiply-add is 2 FLOPs: 2 * N * Cout * Cin * k * k * H * W, then 2 * N * H * W * 8 * 5
    expected = 2 * 2 * 8 * 3 * 9 * 10 * 12 + 2 * 2 * 10 * 12 * 8 * 5
    got = count_flops(lambda: linear(conv(x).permute(0, 2, 3, 1)))
    assert got == expected


def test_benchmark_tool_times_the_deployed_backbone(tmp_path, capsys):
    tool = load_script(ROOT / 'tools' / 'benchmark.py')
    config = str(tiny_segmentor_config(tmp_path))
    stats = tool.main(
        [config, '--shape', '64', '96', '--warmup', '1', '--repeats', '3', '--deploy']
    )
    printed = capsys.readouterr().out
    assert 'backbone 64x96 batch 1' in printed and 'deploy mode' in printed
    assert 0 < stats['min'] <= stats['median'] <= stats['max']


def test_benchmark_tool_bf16_channels_last_deploy_and_cpu_line(tmp_path, capsys, monkeypatch):
    from mmeffformer.models.deploy import switch_to_deploy

    tool = load_script(ROOT / 'tools' / 'benchmark.py')
    asked = []
    monkeypatch.setattr(
        tool,
        'switch_to_deploy',
        lambda m, sizes, dtype: asked.append(dtype) or switch_to_deploy(m, sizes, dtype),
    )
    config = str(tiny_segmentor_config(tmp_path))
    common = [config, '--shape', '64', '96', '--warmup', '1', '--repeats', '2', '--part', 'model']
    tool.main(common + ['--deploy', '--dtype', 'bfloat16', '--channels-last'])
    tool.main(common + ['--deploy'])
    assert asked == [torch.bfloat16, None]  # bf16 backbones; the plain fp32 NCHW rewrite
    printed = capsys.readouterr().out
    from mmeffformer.models.layers.precision import cpu_info

    assert f'cpu ({cpu_info()["model"]}; bf16 flags: ' in printed
    assert 'bfloat16, channels-last' in printed and 'float32, NCHW' in printed


def test_get_flops_tool_reports_backbone_and_model(tmp_path, capsys):
    tool = load_script(ROOT / 'tools' / 'get_flops.py')
    assert tool.main([str(tiny_segmentor_config(tmp_path)), '--shape', '64', '64']) == 0
    printed = capsys.readouterr().out
    assert 'backbone params' in printed and 'model    params' in printed


def fake_results() -> dict:
    backbone = dict(gflops=50.0, eval=500.0, deploy=400.0, onnxruntime=300.0)
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
    assert '= **1.30x** (target >= 1.3x)' in text  # 130 / 100
    assert '**2.00x**, / 250 ms deploy = **4.00x**' in text  # 1000 / 500, 1000 / 250
    assert '50.0 GFLOP / 250 ms = 200.0 GFLOP/s = **200%**' in text
    assert 'at most 1.25x at this size' in text  # convolutions are 80% of the forward
