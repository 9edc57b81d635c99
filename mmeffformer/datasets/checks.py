"""Fail early, naming the problem, when a config's data is missing or malformed (the
checkpoint checks are in :mod:`mmeffformer.checkpoint.checks`)."""

from __future__ import annotations

import json
import os
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
            if path.endswith('.json'):
                check_coco_annotations(path)
        elif str(dataset.get('type', '')).endswith(('SegDataset', 'ADE20KDataset')):
            check_image_folder(dataset)


def check_coco_annotations(path: str) -> None:
    """A COCO instances file: valid JSON, some images, known category ids."""
    try:
        with open(path) as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'Annotation file {path!r} is not valid JSON: {error}') from None
    missing = [key for key in ('images', 'annotations', 'categories') if key not in coco]
    if missing:
        raise ValueError(f'Annotation file {path!r} lacks the COCO keys {missing}')
    if not coco['images']:
        raise ValueError(f'Annotation file {path!r} lists no images')
    known = {category['id'] for category in coco['categories']}
    image_ids = {image['id'] for image in coco['images']}
    for annotation in coco['annotations']:
        if annotation.get('category_id') not in known:
            raise ValueError(
                f'Annotation {annotation.get("id")} in {path!r} has category_id '
                f'{annotation.get("category_id")!r}, not one of the categories {sorted(known)}'
            )
        if annotation.get('image_id') not in image_ids:
            raise ValueError(
                f'Annotation {annotation.get("id")} in {path!r} refers to image_id '
                f'{annotation.get("image_id")!r}, which is not in "images"'
            )


def check_image_folder(dataset: dict) -> None:
    """A segmentation set must have images to read."""
    root = dataset.get('data_root') or ''
    prefix = (dataset.get('data_prefix') or {}).get('img_path', '')
    folder = osp.join(root, prefix)
    suffix = dataset.get('img_suffix', '.jpg')
    if osp.isdir(folder) and not any(name.endswith(suffix) for name in os.listdir(folder)):
        raise ValueError(f'Image folder {folder!r} holds no {suffix} images')
