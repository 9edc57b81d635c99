"""Calibration images: what an exported file is fed at test time, for images of a config's
own dataset drawn through its test-time pipeline and data preprocessor."""

from __future__ import annotations

import copy
from typing import List

import numpy as np
from mmengine.config import Config

#: dataset wrappers whose inner ``dataset`` holds the images
WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')


class _Recorder:
    """A runtime that keeps a copy of every input before running it."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.inputs: List[np.ndarray] = []

    def __call__(self, image: np.ndarray):
        self.inputs.append(np.array(image, dtype=np.float32, copy=True))
        return self.runtime(image)


def _dataset_cfg(cfg: Config, split: str) -> dict:
    loader = f'{split}_dataloader'
    if loader not in cfg:
        raise ValueError(f'the config has no {loader} to calibrate on (split {split!r})')
    dataset = copy.deepcopy(cfg[loader].dataset)
    while str(dataset.get('type', '')).split('.')[-1] in WRAPPERS:
        dataset = dataset.dataset
    # the test-time pipeline: what the file sees when it is evaluated or served
    dataset.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    return dataset


def calibration_inputs(
    cfg: Config,
    onnx_file: str,
    num_images: int,
    split: str = 'train',
    seed: int = 0,
    at_most: bool = False,
) -> List[np.ndarray]:
    """The arrays ``onnx_file`` is fed when ``num_images`` images of the config's ``split``
    set (drawn at random with ``seed``) go through its test pipeline, data preprocessor and
    exported-model wrapper (detectors: each image cropped to its own size). A set smaller
    than ``num_images`` is refused, or used whole with ``at_most``."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from mmeffformer.runtimes import exported_model_cfg

    if num_images < 1:
        raise ValueError(f'--num-images must be at least 1, got {num_images}')
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import DATASETS, MODELS
    else:
        from mmdet.registry import DATASETS, MODELS
    dataset = DATASETS.build(_dataset_cfg(cfg, split))
    if at_most:
        num_images = min(num_images, len(dataset))
    if num_images > len(dataset):
        raise ValueError(
            f'--num-images {num_images} is more than the {len(dataset)} images of the '
            f'{split} set; use at most {len(dataset)}'
        )
    model = MODELS.build(exported_model_cfg(cfg.model, scope, onnx_file, backend='onnxruntime'))
    recorder = _Recorder(model.runtime)
    model.runtime = recorder
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for index in order[:num_images].tolist():
            model.test_step(pseudo_collate([dataset[index]]))
    return recorder.inputs
