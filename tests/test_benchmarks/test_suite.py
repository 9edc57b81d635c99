"""The benchmark suite: its results files, the pages rendered from them, and one real run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import __main__ as suite
from benchmarks import backbone_latency, common, model_zoo, whole_model_latency
from tests.helpers.scripts import ROOT

MACHINE = dict(
    tag='test-cpu-2c-avx2',
    cpu='Test CPU',
    flags=['avx2'],
    cores=2,
    threads=2,
    python='3.11',
    versions=dict(torch='2.13.0'),
    matmul_gflops=dict(fp32=100.0),
)


def backbone_section() -> dict:
    """l1 at one size: eval 400, deploy 300, compiled 250 ms; OpenVINO 200, ONNX Runtime 500."""
    times = dict(eval=400.0, deploy=300.0, compiled=250.0, onnxruntime=500.0, openvino=200.0)
    records = [
        dict(model='l1', size='800x1216', gflops=50.0, mode=mode, precision='fp32', ms=ms)
        for mode, ms in times.items()
    ]
    records.append(dict(records[0], allocator='default', ms=480.0))
    return dict(
        command='python -m benchmarks backbone_latency', date='d', commit='c', records=records
    )


def test_the_published_pages_are_the_render_of_the_results_files():
    pages = suite.render_pages()
    assert ROOT / 'docs' / 'model_zoo.md' in pages and ROOT / 'README.md' in pages
    for path, text in pages.items():
        assert path.read_text() == text, (
            f'{path} differs from its render: python -m benchmarks render'
        )


def test_every_results_page_is_listed_and_names_its_machine():
    listing = (ROOT / 'docs' / 'benchmarks.md').read_text()
    for results in common.load_results(common.RESULTS):
        tag = results['machine']['tag']
        assert f'(results/{tag}.md)' in listing
        page = (common.RESULTS / f'{tag}.md').read_text()
        assert results['machine']['cpu'] in page.split('\n## ')[0]


def test_backbone_table_computes_its_ratios_from_the_records():
    lines = backbone_latency.render(backbone_section(), MACHINE)
    row = next(line for line in lines if line.startswith('| l1 |'))
    # fastest PyTorch 250 ms against the fastest runtime 200 ms; 50 GFLOP in 250 ms
    assert row.endswith('| 250.0 | 500.0 | 200.0 | 1.25 | 200 |')
    assert any('480.0 ms against 400.0 ms with freed memory kept' in line for line in lines)


def test_an_executorch_run_has_its_own_section_with_times_sizes_and_the_int8_ratio():
    times = {'onnxruntime fp32': 390.0, 'openvino bf16': 220.0, 'executorch fp32': 1000.0,
             'executorch int8': 440.0}  # fmt: skip
    megabytes = {'onnxruntime fp32': 50.0, 'openvino bf16': 50.0, 'executorch fp32': 60.0,
                 'executorch int8': 15.0}  # fmt: skip
    records = [
        dict(model='Semantic FPN l1', size='512x512', column=c, ms=ms, file_mb=megabytes[c])
        for c, ms in times.items()
    ]
    section = dict(command='c', date='d', commit='c', records=records)
    lines = whole_model_latency.render(section, MACHINE)
    row = next(line for line in lines if line.startswith('| Semantic FPN l1 |'))
    # fastest float 220 ms over ExecuTorch INT8's 440 ms
    assert row.endswith('| 390 | 220 | 1000 | 440 | 50.0 | 50.0 | 60.0 | 15.0 | 0.50x |')
    results = dict(machine=MACHINE, benchmarks={'whole_model_latency:executorch': section})
    page = suite.machine_page(results)
    assert '## Whole-model latency: executorch' in page and row in page
    args = suite.benchmark_parser(whole_model_latency).parse_args(['--executorch'])
    assert whole_model_latency.section_key(args) == 'whole_model_latency:executorch'
    args = suite.benchmark_parser(backbone_latency).parse_args(['--modes', 'executorch'])
    assert backbone_latency.section_key(args) == 'backbone_latency:executorch'


def test_readme_quotes_eval_the_fastest_pytorch_mode_and_the_fastest_runtime():
    results = dict(machine=MACHINE, benchmarks=dict(backbone_latency=backbone_section()))
    text = '\n'.join(suite.measured_block(results))
    assert (
        '| l1 backbone, 800x1216 | 400 ms / 250 ms (compiled fp32) / 200 ms (openvino fp32) |'
        in text
    )
    assert '(docs/results/test-cpu-2c-avx2.json)' in text


def test_zoo_page_gives_each_machine_its_own_columns():
    config = 'configs/maskrcnn_effformer_l1_coco.py'
    record = dict(config=config, backbone_params=1e7, macs=1e11, fastest_mode='deploy fp32')
    runs = [
        dict(machine=dict(MACHINE, tag=f'm{i}', cpu=f'CPU {i}'), benchmarks={
            'model_zoo': dict(date='d', commit='c', repeats=3, records=[
                dict(record, eval_ms=100.0 * i, fastest_ms=90.0 * i)
            ])
        })
        for i in (1, 2)
    ]  # fmt: skip
    page = model_zoo.render_page(runs)
    assert '1. CPU 1, 2 cores' in page and '2. CPU 2, 2 cores' in page
    row = next(line for line in page.splitlines() if '[maskrcnn_effformer_l1_coco]' in line)
    assert '| 100 | 90 (deploy fp32) | 200 | 180 (deploy fp32) |' in row
    assert sum('maskrcnn_effformer_l1_coco' in line for line in page.splitlines()) == 1


def test_a_run_replaces_its_own_section_and_keeps_the_others(tmp_path):
    common.save_section(tmp_path, MACHINE, 'roi_align', dict(records=[1]))
    common.save_section(tmp_path, MACHINE, 'train_step', dict(records=[2]))
    common.save_section(tmp_path, MACHINE, 'roi_align', dict(records=[3]))
    saved = json.loads((tmp_path / 'test-cpu-2c-avx2.json').read_text())
    assert {k: v['records'] for k, v in saved['benchmarks'].items()} == {
        'roi_align': [3],
        'train_step': [2],
    }


def test_blocks_are_replaced_between_their_markers_only():
    text = 'a\n<!-- x:start -->\nold\n<!-- x:end -->\nb\n'
    assert suite.with_block(text, 'x', ['new']) == 'a\n<!-- x:start -->\nnew\n<!-- x:end -->\nb\n'
    with pytest.raises(ValueError, match='<!-- y:start -->'):
        suite.with_block(text, 'y', [])


def test_machine_tags_and_sizes():
    assert common.machine_tag('AMD EPYC', 2, ['avx512_bf16', 'avx2']) == 'amd-epyc-2c-avx512-bf16'
    tag = common.machine_tag('Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz', 4, ['amx_bf16'])
    assert tag == 'intel-xeon-platinum-8481c-4c-amx-bf16'
    assert common.parse_size('800x1216') == (800, 1216)
    with pytest.raises(ValueError, match="HxW.*'800,1216'"):
        common.parse_size('800,1216')


def test_no_benchmark_touches_sys_path():
    for path in (ROOT / 'benchmarks').glob('*.py'):
        assert 'sys.path' not in path.read_text(), path


def test_one_benchmark_runs_end_to_end(tmp_path):
    """A tiny real run: the results file holds what was measured, the page renders it."""
    command = [sys.executable, '-m', 'benchmarks', 'backbone_latency', '--variants', 'l1']
    command += ['--peers', '--sizes', '64x96', '--modes', 'eval', 'deploy', '--repeats', '1']
    command += ['--results', str(tmp_path)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    (saved,) = tmp_path.glob('*.json')
    results = json.loads(saved.read_text())
    section = results['benchmarks']['backbone_latency']
    assert section['command'] == (
        'python -m benchmarks backbone_latency --variants l1 --peers --sizes 64x96 '
        '--modes eval deploy --repeats 1'
    )
    assert {(r['model'], r['size'], r['mode']) for r in section['records']} >= {
        ('l1', '64x96', 'eval'),
        ('l1', '64x96', 'deploy'),
    }
    assert all(r['ms'] > 0 for r in section['records'])
    page = saved.with_suffix('.md').read_text()
    assert '### 64x96' in page and results['machine']['cpu'] in page
