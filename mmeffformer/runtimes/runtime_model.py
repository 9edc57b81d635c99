"""An exported file as an mmengine model, so a config's test loop and evaluator run it.

:class:`ExportedDetector` and :class:`ExportedSegmentor` take the place of
``cfg.model``: the config's data preprocessor prepares the batch, the runtime
(:mod:`mmeffformer.runtimes.backends`) computes the outputs, and what the file
leaves to the caller is done here the way mmdet / mmseg do it, the same for
every backend: detections are rescaled to the original image and their masks
pasted into it (mmdet's ``_do_paste_mask``); logits are cropped, resized to the
original image and turned into labels (mmseg's ``postprocess_result``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from mmeffformer.registry import MODELS

from .backends import Backend, build_backend


def check_file_fits(metadata: Dict[str, str], expected: Dict[str, str], path: str) -> None:
    """Refuse a file exported from another model than the config describes."""
    if not metadata:
        raise ValueError(
            f'{path} has no mmeffformer metadata: export it with tools/export_onnx.py --part '
            'model (an INT8 IR: quantize that file with tools/quantize.py)'
        )
    wrong = [
        f'{key}: file {metadata.get(key)!r}, config {value!r}'
        for key, value in expected.items()
        if metadata.get(key) != value
    ]
    if wrong:
        raise ValueError(f'{path} does not fit the config: ' + '; '.join(wrong))


def runtime_input(scope: str, image: torch.Tensor, sample) -> torch.Tensor:
    """The float ``(1, C, H, W)`` array an exported file of ``scope`` is fed for one
    preprocessed ``(C, H, W)`` image: a detector's is cropped to the image's own size
    (the batch padding is not the image's; the graph pads itself), a segmentor's is whole."""
    if scope == 'mmdet':
        height, width = sample.img_shape[:2]
        image = image[:, :height, :width]
    return image[None].float()


class _ExportedModel(BaseModel):
    """``file`` loaded in ``backend``; or ``runtime``, a backend already loaded."""

    def __init__(
        self,
        file: Optional[str] = None,
        backend: str = 'onnxruntime',
        precision: str = 'default',
        device: str = 'cpu',
        threads: Optional[int] = None,
        data_preprocessor: Optional[dict] = None,
        runtime: Optional[Backend] = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        if (file is None) == (runtime is None):
            raise ValueError('an exported model takes a file or a loaded runtime (one of them)')
        self.runtime = runtime or build_backend(backend, file, precision, device, threads)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'predict'):
        if mode != 'predict':
            raise ValueError(f'an exported model only predicts; got mode {mode!r}')
        return [self.predict_one(image, sample) for image, sample in zip(inputs, data_samples)]

    def run(self, image: torch.Tensor) -> List[torch.Tensor]:
        """The file's outputs for one ``(1, C, H, W)`` image."""
        outputs = self.runtime(image.cpu().numpy())
        return [torch.from_numpy(np.asarray(o)) for o in outputs]


@MODELS.register_module()
class ExportedDetector(_ExportedModel):
    """Detections of an exported mmdet detector, as mmdet's ``predict`` gives them."""

    def __init__(self, *args, mask_thr_binary: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_thr_binary = mask_thr_binary

    def predict_one(self, image: torch.Tensor, sample):
        outputs = self.run(runtime_input('mmdet', image, sample))
        boxes, scores, labels = outputs[0].float(), outputs[1].float(), outputs[2].long()
        scale = boxes.new_tensor(sample.scale_factor).repeat(2)
        results = InstanceData(bboxes=boxes / scale, scores=scores, labels=labels)
        if len(outputs) > 3:
            results.masks = self.paste_masks(outputs[3].float(), results.bboxes, sample.ori_shape)
        sample.pred_instances = results
        return sample

    def paste_masks(self, masks: torch.Tensor, boxes: torch.Tensor, shape) -> torch.Tensor:
        """mmdet's CPU paste: each mask into its box, thresholded, at the original size."""
        from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

        height, width = int(shape[0]), int(shape[1])
        pasted = torch.zeros(len(masks), height, width, dtype=torch.bool)
        for index in range(len(masks)):
            chunk, region = _do_paste_mask(
                masks[index : index + 1, None], boxes[index : index + 1], height, width, True
            )
            pasted[(slice(index, index + 1),) + region] = chunk >= self.mask_thr_binary
        return pasted


@MODELS.register_module()
class ExportedSegmentor(_ExportedModel):
    """Labels of an exported mmseg segmentor, as mmseg's ``predict`` gives them."""

    def __init__(self, *args, align_corners: bool = False, threshold: float = 0.3, **kwargs):
        super().__init__(*args, **kwargs)
        self.align_corners = align_corners
        self.decode_head = SimpleNamespace(threshold=threshold)  # read by postprocess_result

    def predict_one(self, image: torch.Tensor, sample):
        from mmseg.models.segmentors.base import BaseSegmentor

        logits = self.run(runtime_input('mmseg', image, sample))[0].float()
        # mmseg's own post-processing (crop, flip, resize, argmax) on our logits
        return BaseSegmentor.postprocess_result(self, logits, [sample])[0]


def exported_model_cfg(model_cfg: dict, scope: str, file: str, **runtime) -> dict:
    """``cfg.model`` replaced by the exported file, keeping the config's preprocessor."""
    if scope == 'mmdet':
        test_cfg = model_cfg.get('test_cfg') or {}
        rcnn = test_cfg.get('rcnn') or {}
        return dict(
            type='mmeffformer.ExportedDetector',
            file=file,
            data_preprocessor=model_cfg.get('data_preprocessor'),
            mask_thr_binary=rcnn.get('mask_thr_binary', 0.5),
            **runtime,
        )
    if scope == 'mmseg':
        head = model_cfg['decode_head']
        return dict(
            type='mmeffformer.ExportedSegmentor',
            file=file,
            data_preprocessor=model_cfg.get('data_preprocessor'),
            align_corners=head.get('align_corners', False),
            threshold=head.get('threshold') or 0.3,
            **runtime,
        )
    raise ValueError(f"exported models are evaluated for scope 'mmdet' or 'mmseg', got {scope!r}")
