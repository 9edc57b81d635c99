"""What the benchmarks share: the machine's facts, the models they build, timing, the
results files and markdown tables."""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

import mmeffformer  # noqa: F401  (registers the backbones)
from mmeffformer.utils import cpu_has_native_bf16, interleaved_medians, matmul_gflops
from mmeffformer.utils.model_analysis import build_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'docs' / 'results'
VARIANTS = ('l1', 'l3', 'l7', 'v2-s0', 'v2-s1', 'v2-s2', 'v2-l')
#: mmdet's ResNets, the backbones the recipes replace
PEERS = {'ResNet-50': 50, 'ResNet-18': 18}
TASKS = {
    'detection': 'maskrcnn_effformer_{}_coco.py',
    'segmentation': 'semfpn_effformer_{}_ade20k.py',
}
TASK_NAMES = {'detection': 'Mask R-CNN', 'segmentation': 'Semantic FPN'}
TASK_SIZES = {'detection': (800, 1216), 'segmentation': (512, 512)}
WARMUP = 2
#: CPU flags that decide reduced-precision speed, in the order a tag names the best one
SPEED_FLAGS = ('amx_bf16', 'avx512_bf16', 'avx512_vnni', 'avx_vnni', 'avx512f', 'avx2')

Size = Tuple[int, int]


# ---------------------------------------------------------------- inputs and models


def parse_size(text: str) -> Size:
    """``'800x1216'`` -> ``(800, 1216)``; anything else is refused naming the form."""
    match = re.fullmatch(r'(\d+)x(\d+)', text)
    if not match or min(int(match[1]), int(match[2])) < 32:
        raise ValueError(f'a size is HxW with both sides >= 32 (e.g. 800x1216), got {text!r}')
    return int(match[1]), int(match[2])


def size_name(size: Sequence[int]) -> str:
    return f'{size[0]}x{size[1]}'


def recipe(variant: str, task: str = 'detection') -> str:
    """The recipe of ``variant`` for ``task`` (its attention-bias table fits that task's size)."""
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, got {variant!r}')
    return str(ROOT / 'configs' / TASKS[task].format(variant))


def task_for(size: Size) -> str:
    """The recipe whose official bias table fits ``size`` best: 512x512 segmentation."""
    return 'segmentation' if max(size) <= 512 else 'detection'


def build_backbone(name: str, size: Size) -> Tuple[torch.nn.Module, str]:
    """``(backbone, scope)`` in eval mode: a variant from its recipe, or a peer ResNet."""
    if name in PEERS:
        from mmdet.registry import MODELS
        from mmengine.registry import init_default_scope

        init_default_scope('mmdet')
        model = MODELS.build(dict(type='ResNet', depth=PEERS[name], out_indices=(0, 1, 2, 3)))
        model.eval()  # mmdet's ResNet.train() returns None: no chaining
        return model, 'mmdet'
    if name not in VARIANTS:
        raise ValueError(f'backbone must be one of {VARIANTS + tuple(PEERS)}, got {name!r}')
    return build_model(recipe(name, task_for(size)), 'backbone')


def has_deploy_mode(model: torch.nn.Module) -> bool:
    return any(hasattr(m, 'set_compute_precision') for m in model.modules())


def deployed(model: torch.nn.Module, size: Size, **options) -> torch.nn.Module:
    """A deploy-mode copy of ``model`` (``switch_to_deploy`` rewrites in place)."""
    from mmeffformer.models import switch_to_deploy

    return switch_to_deploy(copy.deepcopy(model), sizes=[size], **options)


def bf16_autocast(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run under CPU bf16 autocast."""

    def autocast_call():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return call()

    return autocast_call


def runtimes_on_file(path: str, names: Sequence[str], openvino_precision: str = 'default') -> dict:
    """The runtimes ``names`` on one ONNX file, each on this process's torch threads."""
    from mmeffformer.runtimes import build_backend

    threads = torch.get_num_threads()
    precision = {'openvino': openvino_precision}
    return {n: build_backend(n, path, precision.get(n, 'default'), threads=threads) for n in names}


def runtimes_on_export(
    module: torch.nn.Module, size: Size, names: Sequence[str], openvino_precision: str = 'default'
) -> dict:
    """The runtimes ``names`` on one ONNX export of ``module`` at ``size``."""
    from mmeffformer.export import export_onnx

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'model.onnx')
        export_onnx(module, path, size)
        return runtimes_on_file(path, names, openvino_precision)


def executorch_programs(
    module: torch.nn.Module, size: Size, folder: str, name: str, cfg=None
) -> Tuple[dict, Dict[str, float]]:
    """ExecuTorch runtimes on the fp32 and INT8 programs of ``module`` (an exportable form;
    ``cfg``: its config, for a detector) bounded at ``size``, as tools/export_executorch.py
    writes them (INT8 calibrated on :func:`calibration_images`), and each file's MB."""
    from mmeffformer.export.executorch_export import export_program
    from mmeffformer.runtimes import build_backend

    runtimes, megabytes = {}, {}
    for precision in ('fp32', 'int8'):
        path = os.path.join(folder, f'{name}_{precision}.pte')
        images = calibration_images(size) if precision == 'int8' else None
        export_program(module, path, size, size, cfg, images)
        runtimes[f'executorch {precision}'] = build_backend('executorch', path)
        megabytes[f'executorch {precision}'] = os.path.getsize(path) / 1e6
    return runtimes, megabytes


def calibration_images(size: Size) -> list:
    """Two random images scaled like normalised ones, to calibrate INT8 forms on: the speed
    does not depend on the ranges, and the error is measured on another random image."""
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(1, 3, *size, generator=generator) * 255 - 123) / 58 for _ in range(2)]


def relative_error(got, want) -> float:
    """Largest |got - want| over the largest |want|: the reduced-precision error measure."""
    got, want = torch.as_tensor(got).float(), torch.as_tensor(want).float()
    return ((got - want).abs().max() / want.abs().max().clamp(min=1e-30)).item()


def medians(calls: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median ms of each call after the warm-up, the calls timed in turns."""
    return interleaved_medians(calls, WARMUP, repeats)


# ---------------------------------------------------------------- the machine


def _version(module: str) -> Optional[str]:
    try:
        return __import__(module).__version__
    except Exception:  # a missing or broken package is reported as absent
        return None


def cpu_flags() -> List[str]:
    """The speed-relevant flags of this CPU (``SPEED_FLAGS`` it has)."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return []
    line = next((row for row in text.splitlines() if row.startswith('flags')), '')
    have = set(line.partition(':')[2].split())
    return [flag for flag in SPEED_FLAGS if flag in have]


def cpu_model() -> str:
    from mmeffformer.utils import cpu_info

    return str(cpu_info()['model'])


def machine_tag(model: str, cores: int, flags: Sequence[str]) -> str:
    """A results file's name: CPU model, cores and its best speed flag,
    e.g. ``amd-epyc-2c-avx512-bf16``."""
    words = re.sub(r'\(r\)|\(tm\)|cpu|processor|@.*', ' ', model.lower())
    slug = '-'.join(re.findall(r'[a-z0-9]+', words)[:4]) or 'cpu'
    best = flags[0].replace('_', '-') if flags else 'baseline'
    return f'{slug}-{cores}c-{best}'


def git_commit() -> str:
    try:
        out = subprocess.run(
            ['git', 'describe', '--always', '--dirty'], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or 'unknown'
    except OSError:
        return 'unknown'


def machine_facts() -> dict:
    """Everything a results file says about where it was measured."""
    flags = cpu_flags()
    model, cores = cpu_model(), os.cpu_count() or 1
    rates = {'fp32': matmul_gflops(WARMUP, 10)}
    if cpu_has_native_bf16():  # emulated bf16 takes minutes and says nothing useful
        rates['bf16'] = matmul_gflops(WARMUP, 10, torch.bfloat16)
    return dict(
        tag=machine_tag(model, cores, flags),
        cpu=model,
        flags=flags,
        cores=cores,
        threads=torch.get_num_threads(),
        python=platform.python_version(),
        versions={
            name: _version(name)
            for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmseg', 'onnxruntime', 'openvino')
        },
        matmul_gflops=rates,
    )


def describe_machine(machine: dict) -> str:
    """One line for a page header: CPU, flags, threads and the matmul rates."""
    rates = ', '.join(f'{k} {v:.0f}' for k, v in machine['matmul_gflops'].items())
    flags = ', '.join(machine['flags']) or 'none of ' + ', '.join(SPEED_FLAGS)
    text = f'{machine["cpu"]}, {machine["cores"]} cores ({flags}), {machine["threads"]} threads'
    return text + (f'; 2048-matmul GFLOP/s: {rates}' if rates else '; matmul rate not recorded')


# ---------------------------------------------------------------- results files


def results_path(folder: Path, tag: str) -> Path:
    return Path(folder) / f'{tag}.json'


def load_results(folder: Path) -> List[dict]:
    """Every machine's results file in ``folder``, by tag."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob('*.json'))]


def save_section(folder: Path, machine: dict, name: str, section: dict) -> Path:
    """Put one benchmark's section into this machine's results file (replacing that
    benchmark's earlier section; the other benchmarks' stay)."""
    path = results_path(folder, machine['tag'])
    results = json.loads(path.read_text()) if path.is_file() else {'benchmarks': {}}
    results['machine'] = machine
    stamp = dict(date=time.strftime('%Y-%m-%d'), commit=git_commit())
    results['benchmarks'][name] = {**stamp, **section}  # the section's own commit, if it has one
    results['benchmarks'] = dict(sorted(results['benchmarks'].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + '\n')
    return path


# ---------------------------------------------------------------- markdown


def fmt(value: Optional[float], digits: int = 1) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> List[str]:
    """A markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return lines


def pivot(
    records: Iterable[dict], row_keys: Sequence[str], column_key: str, value: str = 'ms'
) -> Tuple[List[tuple], List[str], Dict[tuple, Dict[str, float]]]:
    """Records as a grid: row identities in first-seen order, columns in first-seen order,
    and the cells ``{row: {column: value}}``."""
    rows: List[tuple] = []
    columns: List[str] = []
    cells: Dict[tuple, Dict[str, float]] = {}
    for record in records:
        row = tuple(record[k] for k in row_keys)
        if row not in cells:
            rows.append(row)
            cells[row] = {}
        if record[column_key] not in columns:
            columns.append(record[column_key])
        cells[row][record[column_key]] = record[value]
    return rows, columns, cells


def section_header(section: dict) -> List[str]:
    """How a section was produced: its command, date and commit."""
    quick = (
        ' (quick form: for checking the suite, not for comparing)' if section.get('quick') else ''
    )
    return [
        f'`{section["command"]}`, {section["date"]}, commit {section["commit"]}{quick}. '
        + section.get('method', ''),
        '',
    ]
