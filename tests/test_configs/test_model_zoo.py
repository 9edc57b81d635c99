"""The model zoo table, the metafile and configs/ agree: every config, every URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
TABLE = (ROOT / 'docs' / 'model_zoo.md').read_text()
METAFILE = yaml.safe_load((ROOT / 'configs' / 'metafile.yml').read_text())
URL = re.compile(r'https?://[^\s\'")|]+')
#: the published ImageNet files: mmpretrain's V1 conversions, timm's V1 / V2 on the hub
MMPRETRAIN = re.compile(
    r'https://download\.openmmlab\.com/mmclassification/v0/efficientformer/'
    r'efficientformer-(l1|l3|l7)_3rdparty_in1k_\d{8}-[0-9a-f]{8}\.pth'
)
TIMM = re.compile(
    r'https://huggingface\.co/timm/efficientformer(v2)?_(\w+)\.snap_dist_in1k/resolve/main/'
    r'model\.safetensors'
)


def zoo_configs() -> list:
    """The configs users train from: configs/*.py and configs/swap_in/*.py."""
    folders = (ROOT / 'configs', ROOT / 'configs' / 'swap_in')
    return sorted(str(p.relative_to(ROOT)) for f in folders for p in f.glob('*.py'))


def metafile_models() -> dict:
    return {model['Config']: model for model in METAFILE['Models']}


def table_rows() -> dict:
    rows = {}
    for line in TABLE.splitlines():
        match = re.match(r'\| \[[^\]]+\]\(\.\./([^)]+)\) \|', line)
        if match:
            assert match.group(1) not in rows, f'{match.group(1)} listed twice'
            rows[match.group(1)] = [cell.strip() for cell in line.strip('|').split('|')]
    return rows


def test_every_config_is_in_the_metafile_and_the_table_and_nothing_else():
    assert sorted(metafile_models()) == zoo_configs()
    assert sorted(table_rows()) == zoo_configs()


@pytest.mark.parametrize('config', zoo_configs())
def test_the_config_url_is_the_one_listed_and_fits_its_backbone(config):
    text = (ROOT / config).read_text()
    cfg = Config.fromfile(str(ROOT / config))
    backbone = cfg.model.backbone
    url = backbone.init_cfg.checkpoint
    assert URL.findall(text) == [url]  # no other URL hides in the config
    assert metafile_models()[config]['Metadata']['Pretrained'] == url
    assert table_rows()[config][-1] == url
    v2 = backbone.type.endswith('V2')
    if v2:
        match = TIMM.fullmatch(url)
        assert match and match.group(1) == 'v2' and match.group(2) == backbone.arch, url
    else:
        match = MMPRETRAIN.fullmatch(url)
        assert match and match.group(1) == backbone.arch, url


def test_published_results_agree_between_table_and_metafile():
    rows = table_rows()
    for config, model in metafile_models().items():
        metrics = {
            name: value
            for result in model.get('Results', [])
            for name, value in result['Metrics'].items()
        }
        # counted from the end: the latency columns before them are one pair per machine
        box_mask, miou, source = rows[config][-4], rows[config][-3], rows[config][-2]
        if 'box AP' in metrics:
            assert box_mask == f'{metrics["box AP"]} / {metrics["mask AP"]}', config
        elif 'mIoU' in metrics:
            assert miou == str(metrics['mIoU']), config
        else:
            assert (box_mask, miou) in {('- / -', ''), ('', '-')}, config
        assert (source == '-') == (not metrics), config
        if metrics:
            assert model['Results Source'] == source
            assert re.search(r'arXiv 22(06\.01191|12\.08059)', source)


def test_metafile_is_valid_for_mim():
    import modelindex

    index = modelindex.load(str(ROOT / 'model-index.yml'))
    assert index.check(silent=True) == []
    assert sorted(model.config for model in index.models) == zoo_configs()
