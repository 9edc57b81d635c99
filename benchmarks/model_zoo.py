"""What does each config cost: backbone parameters, whole-model GMACs and CPU latency?

Every config a user trains from (the recipes and the swap-in examples; ``configs/demo/``
trains on synthetic data and is left out): the whole model at its recipe's input size,
random weights, batch 1, fp32 eval and the fastest PyTorch mode here (deploy mode, in bf16
where the CPU has native bf16). The entry point also renders ``docs/model_zoo.md`` and
``configs/metafile.yml`` (OpenMMLab's model index, read by ``mim``) from every machine's
results.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import torch

from benchmarks.common import ROOT, deployed, describe_machine, medians, section_header, table
from mmeffformer.utils import cpu_has_native_bf16
from mmeffformer.utils.model_analysis import build_model, count_flops, count_params, model_call

NAME = 'model_zoo'
TITLE = 'Model zoo'
#: timed calls per config: 17 configs, whole models
REPEATS = 3
QUICK = dict(configs=['configs/semfpn_effformer_l1_ade20k.py'], repeats=2)
PAGE = ROOT / 'docs' / 'model_zoo.md'
METAFILE = ROOT / 'configs' / 'metafile.yml'

PAPERS = {
    'EfficientFormer': (
        'https://arxiv.org/abs/2206.01191',
        'EfficientFormer: Vision Transformers at MobileNet Speed',
    ),
    'EfficientFormerV2': (
        'https://arxiv.org/abs/2212.08059',
        'Rethinking Vision Transformers for MobileNet Size and Speed',
    ),
}
#: where the published figures come from
SOURCES = {
    'EfficientFormer': 'EfficientFormer paper (arXiv 2206.01191), COCO / ADE20K backbone table',
    'EfficientFormerV2': 'EfficientFormerV2 paper (arXiv 2212.08059), COCO / ADE20K backbone table',
}
#: Mask R-CNN 1x COCO val (box AP, mask AP) and Semantic FPN 40k ADE20K val (mIoU)
PUBLISHED = {
    'l1': dict(box=37.9, mask=35.4, miou=38.9),
    'l3': dict(box=41.4, mask=38.1, miou=43.5),
    'l7': dict(box=42.6, mask=39.0, miou=45.1),
    'v2-s2': dict(box=43.4, mask=39.5, miou=42.4),
    'v2-l': dict(box=44.7, mask=40.4, miou=45.2),
}


def zoo_configs() -> List[Path]:
    """Every config a user trains from: the recipes and the swap-in examples."""
    folders = [ROOT / 'configs', ROOT / 'configs' / 'swap_in']
    return sorted(path for folder in folders for path in folder.glob('*.py'))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--configs', nargs='+', default=[str(p.relative_to(ROOT)) for p in zoo_configs()]
    )


def describe(config: Path) -> dict:
    """Facts read from the config itself: task, variant, input size, weights URL."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    backbone = cfg.model.backbone
    family = 'EfficientFormerV2' if backbone.type.endswith('V2') else 'EfficientFormer'
    variant = backbone.arch if family == 'EfficientFormer' else f'v2-{backbone.arch}'
    task = 'segmentation' if cfg.get('default_scope') == 'mmseg' else 'detection'
    recipe = config.name.startswith(('maskrcnn_', 'semfpn_')) and config.parent.name == 'configs'
    published = PUBLISHED.get(variant, {}) if recipe else {}
    keys = ('box', 'mask') if task == 'detection' else ('miou',)
    results = {k: published[k] for k in keys if k in published}
    return dict(
        name=config.stem,
        config=str(config.relative_to(ROOT)),
        family=family,
        variant=variant,
        task=task,
        detector=cfg.model.type,
        size=[800, 1216] if task == 'detection' else [512, 512],
        weights=backbone.init_cfg.checkpoint,
        published=results,
        source=SOURCES[family] if results else None,
    )


def measure_config(config: Path, repeats: int) -> dict:
    """Backbone parameters, whole-model MACs and latency (eval fp32 and the fastest mode)."""
    facts = describe(config)
    model, scope = build_model(str(config), 'model')
    size = tuple(facts['size'])
    dtype = torch.bfloat16 if cpu_has_native_bf16() else None
    fastest = 'deploy bf16' if dtype is not None else 'deploy fp32'
    eval_call = model_call(model, scope, 'model', 1, *size, 'cpu')
    fast = deployed(model, size, dtype=dtype)
    times = medians(
        {'eval fp32': eval_call, fastest: model_call(fast, scope, 'model', 1, *size, 'cpu')},
        repeats,
    )
    return dict(
        config=facts['config'],
        backbone_params=count_params(model.backbone),
        macs=count_flops(eval_call) // 2,
        eval_ms=times['eval fp32'],
        fastest_mode=fastest,
        fastest_ms=times[fastest],
    )


def measure(args: argparse.Namespace) -> dict:
    from mmeffformer.utils import keep_freed_memory

    keep_freed_memory()  # as the tools do
    records = []
    for config in args.configs:
        records.append(measure_config((ROOT / config).resolve(), args.repeats))
        print(records[-1], flush=True)
    method = (
        f'The whole model per image at its input size, batch 1, random weights, median of '
        f"{args.repeats} calls after 2 warm-up calls. GMACs: counted with torch's "
        'FlopCounterMode on the executed operators (RoIAlign and NMS not counted).'
    )
    return dict(method=method, repeats=args.repeats, records=records)


def render(section: dict, machine: dict) -> List[str]:
    body = [
        [
            r['config'],
            f'{r["backbone_params"] / 1e6:.2f}',
            f'{r["macs"] / 1e9:.1f}',
            f'{r["eval_ms"]:.0f}',
            f'{r["fastest_ms"]:.0f} ({r["fastest_mode"]})',
        ]
        for r in section['records']
    ]
    header = ['config', 'backbone params (M)', 'GMACs', 'eval fp32 (ms)', 'fastest PyTorch (ms)']
    return [*section_header(section), *table(header, body), '']


def _metric_cells(row: dict) -> str:
    published = row['published']
    if row['task'] == 'detection':
        box, mask = published.get('box'), published.get('mask')
        return f'{box} / {mask}' if box is not None else '- / -'
    return str(published['miou']) if 'miou' in published else '-'


def _results_entries(row: dict) -> Optional[list]:
    published = row['published']
    if not published:
        return None
    if row['task'] == 'segmentation':
        return [
            dict(
                Task='Semantic Segmentation', Dataset='ADE20K', Metrics={'mIoU': published['miou']}
            )
        ]
    return [
        dict(Task='Object Detection', Dataset='COCO', Metrics={'box AP': published['box']}),
        dict(Task='Instance Segmentation', Dataset='COCO', Metrics={'mask AP': published['mask']}),
    ]


def _zoo_machines(all_results: List[dict]) -> List[dict]:
    """The results files with a model-zoo section, each as ``(machine, section)``."""
    return [r for r in all_results if NAME in r['benchmarks']]


def render_page(all_results: List[dict]) -> str:
    """docs/model_zoo.md: every config's facts, and one latency column pair per machine."""
    machines = _zoo_machines(all_results)
    lines = [
        '# Model zoo',
        '',
        'Every config in `configs/` (the recipes and the swap-in examples; `configs/demo/` '
        'trains on synthetic data and is left out). Each starts from the ImageNet weights in '
        'its last column: the URL is downloaded once into the checkpoint cache '
        '([checkpoints.md](checkpoints.md)). No COCO / ADE20K weights are published at a '
        'direct URL, so box AP / mask AP (Mask R-CNN 1x, COCO val) and mIoU (Semantic FPN 40k, '
        "ADE20K val) are the papers' figures for the recipe, not reproduced here; `-` where no "
        'figure is published.',
        '',
        "The ImageNet files: V1 as mmpretrain converted them from the authors' releases (its "
        'file names carry the start of the sha256, which the download checks), V2 as timm '
        "converted them (Hugging Face hub). L3, L7 and the V2 files are the ones the authors' "
        'recipes start from (300 epochs for V1, 450 for V2). For L1 the recipe starts from the '
        '300-epoch file `efficientformer_l1_300d.pth`, published on Google Drive only; both '
        "converted L1 files are the authors' 1000-epoch L1 (80.2% top-1 against 79.2%). Use "
        'the 300-epoch file with `--cfg-options model.backbone.init_cfg.checkpoint=PATH`.',
        '',
        'Backbone parameters include the attention-bias tables of the downstream recipe. GMACs '
        '(OpenMMLab\'s "FLOPs") and latency: `python -m benchmarks model_zoo`, the whole model '
        "per image with random weights (a detector's RoI-head cost depends on how many "
        'proposals survive, so its figure is indicative). Latency columns, one pair per '
        'machine ([benchmarks.md](benchmarks.md) says how to read them):',
        '',
    ]
    for index, results in enumerate(machines, 1):
        section = results['benchmarks'][NAME]
        lines.append(
            f'{index}. {describe_machine(results["machine"])}; {section["date"]}, commit '
            f'{section["commit"]}, median of {section["repeats"]} calls.'
        )
    by_machine = [
        {r['config']: r for r in results['benchmarks'][NAME]['records']} for results in machines
    ]
    header = ['config', 'backbone', 'params (M)', 'input', 'GMACs']
    for index in range(1, len(machines) + 1):
        header += [f'eval fp32 ms ({index})', f'fastest PyTorch ms ({index})']
    header += ['box AP / mask AP', 'mIoU', 'published in', 'ImageNet weights']
    body = []
    for config in zoo_configs():
        facts = describe(config)
        known = [m[facts['config']] for m in by_machine if facts['config'] in m]
        if not known:
            continue
        det = facts['task'] == 'detection'
        row = [
            f'[{facts["name"]}](../{facts["config"]})',
            facts['variant'],
            f'{known[0]["backbone_params"] / 1e6:.2f}',
            f'{facts["size"][0]}x{facts["size"][1]}',
            f'{known[0]["macs"] / 1e9:.1f}',
        ]
        for measured in by_machine:
            record = measured.get(facts['config'])
            row += (
                [
                    f'{record["eval_ms"]:.0f}',
                    f'{record["fastest_ms"]:.0f} ({record["fastest_mode"]})',
                ]
                if record
                else ['-', '-']
            )
        cells = _metric_cells(facts)
        row += [
            cells if det else '',
            '' if det else cells,
            facts['source'] or '-',
            facts['weights'],
        ]
        body.append(row)
    return '\n'.join([*lines, '', *table(header, body)]) + '\n'


def render_metafile(all_results: List[dict]) -> str:
    """OpenMMLab's metafile: a collection per paper, a model per config, inference times
    from every machine's model-zoo section."""
    import yaml

    collections = [
        dict(
            Name=family,
            Metadata={'Training Data': ['ImageNet-1k', 'COCO', 'ADE20K']},
            Paper=dict(URL=url, Title=title),
            README='../docs/model_zoo.md',  # relative to this metafile, as model-index reads it
        )
        for family, (url, title) in PAPERS.items()
    ]
    machines = _zoo_machines(all_results)
    models = []
    for config in zoo_configs():
        facts = describe(config)
        measured = [
            (r['machine'], rec)
            for r in machines
            for rec in r['benchmarks'][NAME]['records']
            if rec['config'] == facts['config']
        ]
        if not measured:
            continue
        det = facts['task'] == 'detection'
        times = [
            {
                'value': round(record[key], 1),
                'hardware': f'CPU ({machine["cpu"]}, {machine["threads"]} threads)',
                'backend': 'PyTorch',
                'batch size': 1,
                'mode': mode,
                'resolution': list(facts['size']),
            }
            for machine, record in measured
            for key, mode in (('eval_ms', 'fp32 eval'), ('fastest_ms', record['fastest_mode']))
        ]
        entry = {
            'Name': facts['name'],
            'In Collection': facts['family'],
            'Config': facts['config'],
            'Metadata': {
                'Training Data': 'COCO' if det else 'ADE20K',
                'Architecture': [facts['family'], facts['detector']],
                'Backbone': facts['variant'],
                'Pretrained': facts['weights'],
                'Parameters': measured[0][1]['backbone_params'],
                'FLOPs': measured[0][1]['macs'],
                'inference time (ms/im)': times,
            },
        }
        entries = _results_entries(facts)
        if entries:
            entry['Results'] = entries
            entry['Results Source'] = facts['source']
        models.append(entry)
    header = (
        '# Rendered by `python -m benchmarks render` from docs/results/*.json: do not edit.\n'
        "# Results are the papers' published figures for the recipe (no trained weights are\n"
        '# published at a direct URL); Pretrained is the ImageNet file the config starts from.\n'
    )
    body = yaml.safe_dump(dict(Collections=collections, Models=models), sort_keys=False, width=200)
    return header + body
