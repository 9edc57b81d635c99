"""The config's own metric for NNCF's quantization with accuracy control: the exported
model, compiled by OpenVINO, evaluated on images of the config's val set with its val
evaluator, in points (mIoU as mmseg gives it, COCO AP x 100)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Tuple

import numpy as np
from mmengine.config import Config

from .calibration import WRAPPERS, build_preprocessor

#: the metric each scope's accuracy is controlled on unless one is named; a name matches
#: the evaluator's key itself or a key with a prefix (``coco/bbox_mAP``, ``box/bbox_mAP``)
DEFAULT_METRICS: Dict[str, str] = {'mmseg': 'mIoU', 'mmdet': 'bbox_mAP'}


def val_items(cfg: Config) -> Tuple[list, dict]:
    """Every item of the config's val set through its val pipeline, as its val loop sees
    them (before collation and the data preprocessor), and the set's metainfo."""
    from mmengine.registry import init_default_scope

    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import DATASETS
    else:
        from mmdet.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    while str(dataset_cfg.get('type', '')).split('.')[-1] in WRAPPERS:
        dataset_cfg = dataset_cfg.dataset
    dataset = DATASETS.build(dataset_cfg)
    return [dataset[index] for index in range(len(dataset))], dataset.metainfo


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the evaluator's per-call log lines and pycocotools' tables: NNCF evaluates
    one image at a time while it ranks what to keep float."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


class ConfigMetric:
    """NNCF's validation function: ``metric`` of the config's val evaluator for a compiled
    OpenVINO model on data items of :func:`val_items`, in points."""

    def __init__(self, cfg: Config, metric: str, metainfo: dict, size: int) -> None:
        from mmengine.evaluator import Evaluator

        from mmeffformer.runtimes import exported_model_cfg

        self.scope = cfg.get('default_scope', 'mmdet')
        self.metric = metric
        self.size = size  # items of the whole val set: there a missing metric is an error
        self.model_cfg = exported_model_cfg(cfg.model, self.scope, file=None)
        self.evaluator = Evaluator(copy.deepcopy(cfg.val_evaluator))
        self.evaluator.dataset_meta = metainfo
        self.preprocessor = build_preprocessor(cfg)

    def model(self, compiled):
        """The exported-model wrapper of :mod:`mmeffformer.runtimes` around ``compiled``."""
        from mmeffformer.registry import MODELS
        from mmeffformer.runtimes.backends import OpenVINOBackend

        return MODELS.build(dict(self.model_cfg, runtime=OpenVINOBackend.of_compiled(compiled)))

    def inputs(self, item) -> Dict[str, np.ndarray]:
        """What the file is fed for one item (NNCF's transform of the validation data)."""
        from mmengine.dataset import pseudo_collate

        from mmeffformer.runtimes import runtime_input

        data = self.preprocessor(pseudo_collate([copy.deepcopy(item)]), False)
        image = runtime_input(self.scope, data['inputs'][0], data['data_samples'][0])
        return {'image': image.numpy()}

    def __call__(self, compiled, items: Iterable) -> float:
        from mmengine.dataset import pseudo_collate

        model = self.model(compiled)
        items = list(items)
        with _quiet():
            for item in items:
                batch = pseudo_collate([copy.deepcopy(item)])
                self.evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
            results = self.evaluator.evaluate(len(items))
        keys = [key for key in results if key == self.metric or key.endswith('/' + self.metric)]
        if len(keys) != 1:
            if not keys and len(items) < self.size:
                return 0.0  # mmdet reports nothing for a few images without detections
            raise KeyError(
                f'the val evaluator gives {len(keys)} metrics named {self.metric!r}; name one '
                f'of {sorted(results)}'
            )
        value = float(results[keys[0]])
        return value * 100 if self.scope == 'mmdet' else value  # mmdet's AP is a fraction


@dataclass
class AccuracyControl:
    """What NNCF's accuracy control needs: the validation function, the val items it runs
    on, and the largest drop of its metric (in points) the INT8 model may show."""

    metric: ConfigMetric
    items: list
    max_drop: float

    @classmethod
    def from_config(cls, cfg: Config, max_drop: float, metric: str | None = None):
        if max_drop < 0:
            raise ValueError(f'--max-drop is a drop in points, at least 0; got {max_drop}')
        scope = cfg.get('default_scope', 'mmdet')
        if 'val_dataloader' not in cfg or 'val_evaluator' not in cfg:
            raise ValueError(
                '--max-drop evaluates on the val set: the config has no val_dataloader or '
                'val_evaluator'
            )
        items, metainfo = val_items(cfg)
        return cls(
            ConfigMetric(cfg, metric or DEFAULT_METRICS[scope], metainfo, len(items)),
            items,
            max_drop,
        )
