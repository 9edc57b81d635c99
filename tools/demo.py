"""The README's first command: train and evaluate on generated scenes, on the CPU.

Builds mmseg's Semantic FPN with an EfficientFormer-l1 backbone (from scratch:
no pretrained weights can be downloaded here), trains it on synthetic scenes of
three shape classes, evaluates mIoU on held-out scenes and writes a report and
a PNG of predictions. ``--smoke`` runs a few iterations, for CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.datasets.synthetic import CLASSES, make_scene  # noqa: E402

SIZE = (128, 128)
PALETTE = np.array([(0, 0, 0)] + [colour for _, colour in CLASSES], np.uint8)


def build_segmentor(num_classes: int) -> torch.nn.Module:
    cfg = Config.fromstring(
        "_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py']", '.py'
    )
    cfg.merge_from_dict(
        dict(
            model=dict(
                pretrained=None,
                data_preprocessor=dict(size=SIZE),
                backbone=dict(_delete_=True, type='mmeffformer.EfficientFormer', arch='l1'),
                neck=dict(in_channels=[48, 96, 224, 448]),
                decode_head=dict(num_classes=num_classes),
            )
        )
    )
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def batch(model, seeds, training: bool) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    inputs, samples = [], []
    for seed in seeds:
        scene = make_scene(int(seed), SIZE)
        inputs.append(torch.from_numpy(scene.image).permute(2, 0, 1).contiguous())
        sample = SegDataSample(metainfo=dict(img_shape=SIZE, ori_shape=SIZE, pad_shape=SIZE))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(scene.semantic).long()[None])
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training)


def evaluate(model, seeds, num_classes: int):
    confusion = np.zeros((num_classes, num_classes), np.int64)
    predictions = []
    model.eval()
    with torch.no_grad():
        for seed in seeds:
            result = model(**batch(model, [seed], False), mode='predict')[0]
            pred = result.pred_sem_seg.data[0].numpy()
            gt = result.gt_sem_seg.data[0].numpy()
            confusion += np.bincount(
                gt.ravel() * num_classes + pred.ravel(), minlength=num_classes**2
            ).reshape(num_classes, num_classes)
            predictions.append((seed, pred))
    iou = np.diag(confusion) / np.maximum(
        confusion.sum(0) + confusion.sum(1) - np.diag(confusion), 1
    )
    return iou, predictions


def draw(predictions, path: Path) -> None:
    rows = []
    for seed, pred in predictions[:4]:
        scene = make_scene(int(seed), SIZE)
        rows.append(np.concatenate([scene.image, PALETTE[scene.semantic], PALETTE[pred]], 1))
    cv2.imwrite(str(path), np.concatenate(rows, 0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='report folder')
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--smoke', action='store_true', help='a few iterations only (CI)')
    args = parser.parse_args(argv)
    iters = 3 if args.smoke else args.iters
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    MMLogger.get_instance('mmeffformer_demo', log_level='WARNING')  # quiet weight-init logs
    torch.manual_seed(0)
    num_classes = len(CLASSES) + 1
    model = build_segmentor(num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=iters, power=0.9)
    start = time.time()
    model.train()
    for step in range(iters):
        seeds = range(step * args.batch_size, (step + 1) * args.batch_size)
        losses = model(**batch(model, seeds, True), mode='loss')
        loss, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 0 or step == iters - 1:
            elapsed = time.time() - start
            print(f'[{step + 1:4d}/{iters}] loss {loss.item():.4f}  {elapsed:6.1f}s', flush=True)
    train_seconds = time.time() - start
    held_out = range(10**6, 10**6 + (4 if args.smoke else 48))
    iou, predictions = evaluate(model, held_out, num_classes)
    names = ['background'] + [name for name, _ in CLASSES]
    lines = [
        '# mmeffformer demo: Semantic FPN + EfficientFormer-l1 (from scratch) on synthetic scenes',
        '',
        f'iterations {iters}, batch {args.batch_size}, {SIZE[0]}x{SIZE[1]} px, '
        f'train time {train_seconds:.0f} s, threads {torch.get_num_threads()}',
        f'mIoU on {len(held_out)} held-out scenes: {100 * iou.mean():.1f}',
        '',
        '| class | IoU |',
        '|---|---|',
        *[f'| {name} | {100 * value:.1f} |' for name, value in zip(names, iou)],
    ]
    (out / 'report.md').write_text('\n'.join(lines) + '\n')
    draw(predictions, out / 'predictions.png')
    print('\n'.join(lines))
    print(f'wrote {out / "report.md"} and {out / "predictions.png"} (image | truth | prediction)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
