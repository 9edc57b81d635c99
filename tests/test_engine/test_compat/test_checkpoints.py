"""mmengine checkpoints load on every supported stack once mmeffformer is imported.

torch 2.6 made ``weights_only=True`` the default of ``torch.load``; mmengine 0.10.7
does not pass it, so its own checkpoints (which hold a HistoryBuffer and numpy
values) were refused on resume, ``load_from`` and ``init_detector``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmeffformer  # noqa: F401
from mmeffformer.models import EfficientFormer
from mmeffformer.utils.torch_features import torch_at_least
from tests.helpers.downstream import MASK_RCNN, SEM_FPN, with_backbone

pytestmark = pytest.mark.compat
TINY = dict(widths=(8, 16, 24, 32), depths=(1, 1, 1, 2), num_attention=1)


class ToyDataset(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        gen = torch.Generator().manual_seed(index)
        return dict(
            inputs=torch.rand(3, 64, 64, generator=gen), target=torch.rand(1, generator=gen)
        )


class ToyRegressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = EfficientFormer(TINY, out_indices=(3,))
        self.head = torch.nn.Linear(32, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        prediction = self.head(self.backbone(inputs)[0].mean((2, 3)))
        if mode == 'loss':
            return dict(loss=((prediction - target) ** 2).mean())
        return prediction


def make_runner(work_dir, max_iters: int, **kwargs) -> Runner:
    torch.manual_seed(0)
    return Runner(
        model=ToyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate'),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        **kwargs,
    )


def test_train_save_resume_and_load_from(tmp_path):
    first = make_runner(tmp_path / 'a', max_iters=2)
    first.train()
    checkpoint = tmp_path / 'a' / 'iter_2.pth'
    assert checkpoint.is_file()
    if torch_at_least('2.6'):
        # the failure this fixes: plain torch.load refuses the runner's checkpoint
        with pytest.raises(Exception, match='[Ww]eights only load failed'):
            torch.load(checkpoint)

    resumed = make_runner(tmp_path / 'b', max_iters=3, resume=True, load_from=str(checkpoint))
    resumed.train()
    assert resumed.iter == 3

    reference = make_runner(tmp_path / 'c', max_iters=3)
    reference.train()
    for (name, a), (_, b) in zip(
        reference.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        torch.testing.assert_close(a, b, msg=name, atol=1e-6, rtol=1e-5)

    loaded = make_runner(tmp_path / 'd', max_iters=2, load_from=str(checkpoint))
    loaded.load_or_resume()
    saved = torch.load(checkpoint, weights_only=False)['state_dict']
    for name, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)


def _save_runner_style_checkpoint(model: torch.nn.Module, path) -> None:
    from mmengine.logging import HistoryBuffer

    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(epoch=1, iter=2, seed=np.int64(3)),
            message_hub=dict(log_scalars=dict(loss=HistoryBuffer())),
        ),
        path,
    )


def test_mmdet_and_mmseg_apis_load_runner_checkpoints(tmp_path):
    from mmdet.apis import init_detector
    from mmseg.apis import init_model

    from tests.helpers.downstream import build_from_config

    backbone = dict(type='mmeffformer.EfficientFormer', arch=TINY)
    det_cfg = with_backbone(MASK_RCNN, backbone, TINY['widths'])
    detector = build_from_config(det_cfg, 'mmdet')
    det_path = tmp_path / 'det.pth'
    _save_runner_style_checkpoint(detector, det_path)
    loaded = init_detector(det_cfg, str(det_path), device='cpu')
    torch.testing.assert_close(
        loaded.backbone.stem.conv1.conv.weight, detector.backbone.stem.conv1.conv.weight
    )

    seg_cfg = with_backbone(SEM_FPN, backbone, TINY['widths'])
    seg_cfg.model.pretrained = None
    segmentor = build_from_config(seg_cfg, 'mmseg')
    seg_path = tmp_path / 'seg.pth'
    _save_runner_style_checkpoint(segmentor, seg_path)
    loaded = init_model(seg_cfg, str(seg_path), device='cpu')
    torch.testing.assert_close(
        loaded.decode_head.conv_seg.weight, segmentor.decode_head.conv_seg.weight
    )
