"""mmseg's IoU metric with every class's IoU in the returned metrics."""

from __future__ import annotations

from typing import Dict

import numpy as np
from mmseg.evaluation import IoUMetric

from mmeffformer.registry import METRICS


@METRICS.register_module()
class ClasswiseIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` that also returns each class's IoU (``'IoU.<class>'``,
    percent); mmseg only prints the per-class table to the log."""

    def compute_metrics(self, results: list) -> Dict[str, float]:
        intersect = sum(result[0] for result in results).numpy()
        union = sum(result[1] for result in results).numpy()
        metrics = super().compute_metrics(results)
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = 100.0 * intersect / union  # nan for a class in neither truth nor prediction
        for name, value in zip(self.dataset_meta['classes'], iou):
            metrics[f'IoU.{name}'] = round(float(value), 2)
        return metrics
