"""Fail early, with the path, when a config's dataset is not where it says."""

from __future__ import annotations

import os.path as osp
from typing import Iterator, Sequence

from mmengine.config import Config

ALL_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(cfg: Config, loaders: Sequence[str]) -> Iterator[dict]:
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while 'dataset' in dataset:  # wrappers such as RepeatDataset
            dataset = dataset['dataset']
        yield dataset


def check_data_roots(cfg: Config, loaders: Sequence[str] = ALL_LOADERS) -> None:
    """Raise ``FileNotFoundError`` naming the first missing data root or annotation file."""
    for dataset in _datasets(cfg, loaders):
        root = dataset.get('data_root') or ''
        if root and not osp.isdir(root):
            raise FileNotFoundError(
                f'Dataset root {root!r} ({dataset.get("type")}) does not exist; put the data '
                f'there or set it with --cfg-options'
            )
        for kind, prefix in (dataset.get('data_prefix') or {}).items():
            path = prefix if osp.isabs(prefix) else osp.join(root, prefix)
            if prefix and not osp.isdir(path):
                raise FileNotFoundError(f'Dataset folder {path!r} ({kind}) does not exist')
        ann = dataset.get('ann_file')
        if ann:
            path = ann if osp.isabs(ann) else osp.join(root, ann)
            if not osp.isfile(path):
                raise FileNotFoundError(f'Annotation file {path!r} does not exist')


def check_pretrained_files(cfg: Config) -> None:
    """Raise ``FileNotFoundError`` when the backbone's pretrained file is missing."""
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    path = init_cfg.get('checkpoint') if init_cfg.get('type') == 'Pretrained' else None
    if path and '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f"Pretrained backbone weights {path!r} not found: put the authors' ImageNet file "
            f'there, or train from scratch with --cfg-options model.backbone.init_cfg=None'
        )
