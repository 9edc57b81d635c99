"""The model zoo: every config's backbone, cost, CPU latency, published results and weights.

Usage:
    python benchmarks/model_zoo.py [--repeats 3]   # measure, then write the three files
    python benchmarks/model_zoo.py --render-only   # rewrite them from docs/model_zoo.json

Writes docs/model_zoo.json (the measurements), docs/model_zoo.md (the table) and
configs/metafile.yml (OpenMMLab's model-index format, read by ``mim``). Latency: one
inference per image of the whole model with random weights, batch 1, this machine's
threads, median of ``--repeats`` after the warm-up; fp32 eval and the fastest PyTorch
mode here (deploy mode, in bf16 where the CPU has native bf16).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import ROOT, WARMUP, machine_description  # noqa: E402
from mmeffformer.utils.model_analysis import (  # noqa: E402
    build_model,
    count_flops,
    count_params,
    model_call,
)

JSON = ROOT / 'docs' / 'model_zoo.json'
TABLE = ROOT / 'docs' / 'model_zoo.md'
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


def describe(config: Path) -> dict:
    """Facts read from the config itself: task, variant, input size, weights URL."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    backbone = cfg.model.backbone
    family = 'EfficientFormerV2' if backbone.type.endswith('V2') else 'EfficientFormer'
    variant = backbone.arch if family == 'EfficientFormer' else f'v2-{backbone.arch}'
    task = 'segmentation' if cfg.get('default_scope') == 'mmseg' else 'detection'
    name = config.stem
    recipe = name.startswith(('maskrcnn_', 'semfpn_')) and config.parent.name == 'configs'
    published = PUBLISHED.get(variant, {}) if recipe else {}
    results = (
        {k: published[k] for k in ('box', 'mask') if k in published}
        if task == 'detection'
        else {k: published[k] for k in ('miou',) if k in published}
    )
    return dict(
        name=name,
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


def measure(config: Path, repeats: int) -> dict:
    """Backbone parameters, whole-model MACs and latency (eval fp32 and fastest mode)."""
    import copy

    from mmeffformer.models import switch_to_deploy
    from mmeffformer.utils import interleaved_medians
    from mmeffformer.utils.cpu_facts import cpu_has_native_bf16

    row = describe(config)
    model, scope = build_model(str(config), 'model')
    size = tuple(row['size'])
    dtype = torch.bfloat16 if cpu_has_native_bf16() else None
    fastest = 'deploy bf16' if dtype is not None else 'deploy fp32'
    deployed = switch_to_deploy(copy.deepcopy(model), sizes=[size], dtype=dtype)
    eval_call = model_call(model, scope, 'model', 1, *size, 'cpu')
    times = interleaved_medians(
        {'eval fp32': eval_call, fastest: model_call(deployed, scope, 'model', 1, *size, 'cpu')},
        WARMUP,
        repeats,
    )
    row.update(
        backbone_params=count_params(model.backbone),
        macs=count_flops(eval_call) // 2,
        latency_eval_ms=times['eval fp32'],
        fastest_mode=fastest,
        latency_fastest_ms=times[fastest],
    )
    return row


def _metric_cells(row: dict) -> str:
    published = row['published']
    if row['task'] == 'detection':
        box, mask = published.get('box'), published.get('mask')
        return f'{box} / {mask}' if box is not None else '- / -'
    return str(published['miou']) if 'miou' in published else '-'


def render_table(results: dict) -> str:
    native_bf16 = results['fastest_mode'] == 'deploy bf16'
    lines = [
        '# Model zoo',
        '',
        'Every config in `configs/` (the recipes and the swap-in examples; `configs/demo/` '
        'trains on synthetic data and is left out). Each starts from the ImageNet weights in '
        'its last column: the URL is downloaded once into the checkpoint cache '
        '([checkpoints.md](checkpoints.md)). No COCO / ADE20K weights are published at a '
        'direct URL, so the '
        'box AP / mask AP (Mask R-CNN 1x, COCO val) and mIoU (Semantic FPN 40k, ADE20K val) '
        "are the papers' figures for the recipe, not reproduced here; `-` where no figure "
        'is published.',
        '',
        "The ImageNet files: V1 as mmpretrain converted them from the authors' releases (its "
        'file names carry the start of the sha256, which the download checks), V2 as timm '
        "converted them (Hugging Face hub). L3, L7 and the V2 files are the ones the authors' "
        'recipes start from (300 epochs for V1, 450 for V2). For L1 the recipe starts from the '
        '300-epoch file `efficientformer_l1_300d.pth`, published on Google Drive only; both '
        "converted L1 files are the authors' 1000-epoch L1 (80.2% top-1 against 79.2%). Use "
        'the 300-epoch file with `--cfg-options model.backbone.init_cfg.checkpoint=PATH`.',
        '',
        f'Measured: {results["machine"]}; command: `{results["command"]}`. Backbone '
        'parameters include the attention-bias tables of the downstream recipe. GMACs '
        '(OpenMMLab\'s "FLOPs"): the whole model at its input size, counted with torch '
        'FlopCounterMode on the executed operators (RoIAlign and NMS not counted). Latency: '
        "the whole model per image, batch 1, random weights (a detector's RoI-head cost "
        'depends on how many proposals survive, so its figure is indicative), median of '
        f'{results["repeats"]} runs. The fastest PyTorch mode is deploy mode, in bf16 on CPUs '
        f'with native bf16 (AMX or AVX512-BF16){"" if native_bf16 else ", which this CPU lacks"}; '
        'without it deploy runs in fp32 and is '
        'within the noise of eval, and an exported model in ONNX Runtime or OpenVINO is the faster '
        'path ([exported_models.md](exported_models.md)). Timings vary by 10-30% between runs on '
        'this machine.',
        '',
        f'| config | backbone | params (M) | input | GMACs | fp32 eval (ms) '
        f'| {results["fastest_mode"]} (ms) | box AP / mask AP | mIoU | published in '
        '| ImageNet weights |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in results['rows']:
        det = row['task'] == 'detection'
        lines.append(
            f'| [{row["name"]}](../{row["config"]}) | {row["variant"]} '
            f'| {row["backbone_params"] / 1e6:.2f} | {row["size"][0]}x{row["size"][1]} '
            f'| {row["macs"] / 1e9:.1f} | {row["latency_eval_ms"]:.0f} '
            f'| {row["latency_fastest_ms"]:.0f} '
            f'| {_metric_cells(row) if det else ""} | {"" if det else _metric_cells(row)} '
            f'| {row["source"] or "-"} | {row["weights"]} |'
        )
    return '\n'.join(lines) + '\n'


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


def render_metafile(results: dict) -> str:
    """OpenMMLab's metafile: a collection per paper, a model per config."""
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
    models = []
    for row in results['rows']:
        det = row['task'] == 'detection'
        entry = {
            'Name': row['name'],
            'In Collection': row['family'],
            'Config': row['config'],
            'Metadata': {
                'Training Data': 'COCO' if det else 'ADE20K',
                'Architecture': [row['family'], row['detector']],
                'Backbone': row['variant'],
                'Pretrained': row['weights'],
                'Parameters': row['backbone_params'],
                'FLOPs': row['macs'],
                'inference time (ms/im)': [
                    {
                        'value': round(row[key], 1),
                        'hardware': results['cpu'],
                        'backend': 'PyTorch',
                        'batch size': 1,
                        'mode': mode,
                        'resolution': list(row['size']),
                    }
                    for key, mode in (
                        ('latency_eval_ms', 'fp32 eval'),
                        ('latency_fastest_ms', row['fastest_mode']),
                    )
                ],
            },
        }
        entries = _results_entries(row)
        if entries:
            entry['Results'] = entries
            entry['Results Source'] = row['source']
        models.append(entry)
    header = (
        '# Written by benchmarks/model_zoo.py from docs/model_zoo.json: edit that script.\n'
        "# Results are the papers' published figures for the recipe (no trained weights are\n"
        '# published at a direct URL); Pretrained is the ImageNet file the config starts from.\n'
    )
    body = yaml.safe_dump(dict(Collections=collections, Models=models), sort_keys=False, width=200)
    return header + body


def write_all(results: dict) -> None:
    TABLE.write_text(render_table(results))
    METAFILE.write_text(render_metafile(results))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--render-only', action='store_true')
    parser.add_argument('--configs', nargs='+', help='measure only these (keeps the others)')
    args = parser.parse_args(argv)
    if args.render_only:
        write_all(json.loads(JSON.read_text()))
        return 0
    from mmeffformer.utils import keep_freed_memory
    from mmeffformer.utils.cpu_facts import cpu_info

    keep_freed_memory()  # as the tools do
    known: Dict[str, dict] = {}
    if args.configs and JSON.is_file():
        known = {row['config']: row for row in json.loads(JSON.read_text())['rows']}
    wanted = {str(Path(c).resolve().relative_to(ROOT)) for c in args.configs or []}
    rows = []
    for config in zoo_configs():
        relative = str(config.relative_to(ROOT))
        if wanted and relative not in wanted and relative in known:
            rows.append({**known[relative], **describe(config)})
            continue
        row = measure(config, args.repeats)
        print(json.dumps(row), flush=True)
        rows.append(row)
    results = dict(
        machine=machine_description(),
        cpu=f'CPU ({cpu_info()["model"]}, {torch.get_num_threads()} threads)',
        command=f'python benchmarks/model_zoo.py --repeats {args.repeats}',
        repeats=args.repeats,
        fastest_mode=rows[0]['fastest_mode'],
        rows=rows,
    )
    JSON.write_text(json.dumps(results, indent=1) + '\n')
    write_all(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
