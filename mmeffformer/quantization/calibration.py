"""Calibration images: images of a config's own dataset drawn through its test-time pipeline
and data preprocessor, as the model (or an exported file of it) sees them when evaluated."""

from __future__ import annotations

import copy
from typing import List, Tuple

import numpy as np
import torch
from mmengine.config import Config

#: dataset wrappers whose inner ``dataset`` holds the images
WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')


def _dataset_cfg(cfg: Config, split: str) -> dict:
    loader = f'{split}_dataloader'
    if loader not in cfg:
        raise ValueError(f'the config has no {loader} to calibrate on (split {split!r})')
    dataset = copy.deepcopy(cfg[loader].dataset)
    while str(dataset.get('type', '')).split('.')[-1] in WRAPPERS:
        dataset = dataset.dataset
    # the test-time pipeline: what the model sees when it is evaluated or served
    dataset.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    return dataset


def build_preprocessor(cfg: Config):
    """The config's data preprocessor, built in its scope."""
    if cfg.get('default_scope', 'mmdet') == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return MODELS.build(cfg.model.data_preprocessor)


def calibration_batches(
    cfg: Config, num_images: int, split: str = 'train', seed: int = 0, at_most: bool = False
) -> List[Tuple[torch.Tensor, object]]:
    """``(image, data sample)`` of ``num_images`` images of the config's ``split`` set, drawn
    at random with ``seed``, after its test pipeline and data preprocessor: the float
    ``(1, C, H, W)`` batch a PyTorch model's backbone is fed. A set smaller than
    ``num_images`` is refused, or used whole with ``at_most``."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    if num_images < 1:
        raise ValueError(f'--num-images must be at least 1, got {num_images}')
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import DATASETS
    else:
        from mmdet.registry import DATASETS
    dataset = DATASETS.build(_dataset_cfg(cfg, split))
    if at_most:
        num_images = min(num_images, len(dataset))
    if num_images > len(dataset):
        raise ValueError(
            f'--num-images {num_images} is more than the {len(dataset)} images of the '
            f'{split} set; use at most {len(dataset)}'
        )
    preprocessor = build_preprocessor(cfg)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    batches = []
    with torch.no_grad():
        for index in order[:num_images].tolist():
            data = preprocessor(pseudo_collate([dataset[index]]), False)
            batches.append((data['inputs'].float(), data['data_samples'][0]))
    return batches


def calibration_inputs(
    cfg: Config, num_images: int, split: str = 'train', seed: int = 0, at_most: bool = False
) -> List[np.ndarray]:
    """The arrays a file of ``tools/export_onnx.py --part model`` is fed for the images of
    :func:`calibration_batches` (a detector's: each image cropped to its own size)."""
    from mmeffformer.runtimes import runtime_input

    scope = cfg.get('default_scope', 'mmdet')
    return [
        runtime_input(scope, image[0], sample).numpy()
        for image, sample in calibration_batches(cfg, num_images, split, seed, at_most)
    ]
