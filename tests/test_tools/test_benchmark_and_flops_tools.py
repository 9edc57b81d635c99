"""tools/benchmark.py and tools/get_flops.py on a tiny segmentor."""

from __future__ import annotations

import re

import torch

from tests.helpers.scripts import ROOT, load_script
from tests.helpers.tiny_configs import tiny_segmentor_config


def test_benchmark_tool_times_the_deployed_backbone(tmp_path, capsys):
    tool = load_script(ROOT / 'tools' / 'benchmark.py')
    config = str(tiny_segmentor_config(tmp_path))
    stats = tool.main(
        [config, '--shape', '64', '96', '--warmup', '1', '--repeats', '3', '--deploy']
    )
    printed = capsys.readouterr().out
    assert 'backbone 64x96 batch 1' in printed and 'deploy mode' in printed
    assert 0 < stats['min'] <= stats['median'] <= stats['max']


def test_benchmark_tool_compiles_the_deployed_backbone_and_prints_the_compile_time(
    tmp_path, capsys
):
    import pytest

    tool = load_script(ROOT / 'tools' / 'benchmark.py')
    config = str(tiny_segmentor_config(tmp_path))
    common = [config, '--shape', '64', '96', '--warmup', '1', '--repeats', '2']
    with pytest.raises(SystemExit):
        tool.main(common + ['--compile'])  # without --deploy
    assert '--compile needs --deploy' in capsys.readouterr().err
    torch._dynamo.reset()  # graphs of earlier tests do not count against dynamo's limits
    try:
        stats = tool.main(common + ['--deploy', '--compile'])
    finally:
        torch._dynamo.reset()
    printed = capsys.readouterr().out
    assert 'deploy mode, compiled' in printed
    assert re.search(r'compiled deploy mode: [1-9]\d* graph\(s\) compiled in \d+\.\d s', printed)
    assert 0 < stats['min'] <= stats['median']


def test_benchmark_tool_bf16_channels_last_deploy_and_cpu_line(tmp_path, capsys, monkeypatch):
    from mmeffformer.models import switch_to_deploy

    tool = load_script(ROOT / 'tools' / 'benchmark.py')
    asked = []
    monkeypatch.setattr(
        tool,
        'switch_to_deploy',
        lambda m, sizes, dtype, compile: asked.append(dtype) or switch_to_deploy(m, sizes, dtype),
    )
    config = str(tiny_segmentor_config(tmp_path))
    common = [config, '--shape', '64', '96', '--warmup', '1', '--repeats', '2', '--part', 'model']
    tool.main(common + ['--deploy', '--dtype', 'bfloat16', '--channels-last'])
    tool.main(common + ['--deploy'])
    assert asked == [torch.bfloat16, None]  # bf16 backbones; the plain fp32 NCHW rewrite
    printed = capsys.readouterr().out
    from mmeffformer.utils.cpu_facts import cpu_info

    assert f'cpu ({cpu_info()["model"]}; bf16 flags: ' in printed
    assert 'bfloat16, channels-last' in printed and 'float32, NCHW' in printed


def test_get_flops_tool_reports_backbone_and_model(tmp_path, capsys):
    tool = load_script(ROOT / 'tools' / 'get_flops.py')
    assert tool.main([str(tiny_segmentor_config(tmp_path)), '--shape', '64', '64']) == 0
    printed = capsys.readouterr().out
    assert 'backbone params' in printed and 'model    params' in printed
