"""The README's first command: generate data, train and evaluate both recipes on the CPU.

1. writes the synthetic COCO-format and ADE20K-layout sets (if missing);
2. trains Mask R-CNN + EfficientFormer-l1 and Semantic FPN + EfficientFormer-l1
   from the demo configs (mmengine runner, progress with ETA in the log);
3. evaluates on the held-out split with mmdet's CocoMetric and mmseg's IoUMetric;
4. writes ``report.md`` (box AP, AP50, mask AP, mIoU, per-class IoU, times) and
   PNGs of predictions on validation images.

``--smoke`` runs the same path with a few iterations on a tiny set (CI).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.analysis import keep_freed_memory  # noqa: E402
from mmeffformer.datasets.synthetic import write_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DET_CONFIG = ROOT / 'configs' / 'demo' / 'maskrcnn_effformer_l1_synthetic.py'
SEG_CONFIG = ROOT / 'configs' / 'demo' / 'semfpn_effformer_l1_synthetic.py'


def point_to_data(cfg: Config, root: Path, detection: bool) -> None:
    """Aim every dataloader (and the COCO evaluator) at ``root``."""
    data_root = f'{root}/coco/' if detection else f'{root}/ade/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    if detection:
        for evaluator in ('val_evaluator', 'test_evaluator'):
            cfg[evaluator].ann_file = f'{data_root}annotations/instances_val2017.json'


def make_config(path: Path, data: Path, work_dir: Path, iters: int, smoke: bool) -> Config:
    cfg = Config.fromfile(str(path))
    detection = cfg.default_scope == 'mmdet'
    point_to_data(cfg, data, detection)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1  # evaluate once, after training
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1 if smoke else 10
    for scheduler in cfg.param_scheduler:
        if scheduler.get('end', 0) > 50:
            scheduler.end = iters
            if 'T_max' in scheduler:
                scheduler.T_max = iters
    if smoke:
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
    return cfg


def to_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy().astype(np.uint8)  # BGR, as loaded


def draw_detections(runner: Runner, path: Path, count: int = 4) -> None:
    """Predicted boxes and masks on the first validation images, side by side."""
    from mmdet.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer(name=f'demo_det_{time.time()}')
    visualizer.dataset_meta = runner.test_dataloader.dataset.metainfo
    panels = []
    runner.model.eval()
    with torch.no_grad():
        for index, data in enumerate(runner.test_dataloader):
            if index == count:
                break
            sample = runner.model.test_step(data)[0]
            image = cv2.imread(sample.img_path)[..., ::-1].copy()
            visualizer.add_datasample(
                'prediction', image, sample, draw_gt=True, show=False, pred_score_thr=0.5
            )
            panels.append(visualizer.get_image()[..., ::-1])
    cv2.imwrite(str(path), np.concatenate(panels, 0))


def segmentation_report(runner: Runner, path: Path, count: int = 4) -> np.ndarray:
    """Per-class IoU over the test set, and image | truth | prediction panels."""
    classes = runner.test_dataloader.dataset.metainfo['classes']
    palette = np.array(runner.test_dataloader.dataset.metainfo['palette'], np.uint8)[:, ::-1]
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    panels = []
    runner.model.eval()
    with torch.no_grad():
        for data in runner.test_dataloader:
            sample = runner.model.test_step(data)[0]
            pred = sample.pred_sem_seg.data[0].numpy()
            truth = sample.gt_sem_seg.data[0].numpy()
            valid = truth != 255
            confusion += np.bincount(
                truth[valid] * len(classes) + pred[valid], minlength=len(classes) ** 2
            ).reshape(len(classes), len(classes))
            if len(panels) < count:
                image = cv2.imread(sample.img_path)
                shown = np.where(valid, truth, 0)
                panels.append(np.concatenate([image, palette[shown], palette[pred]], 1))
    cv2.imwrite(str(path), np.concatenate(panels, 0))
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    return np.diag(confusion) / np.maximum(union, 1)


def run_job(cfg: Config) -> tuple:
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    train_seconds = time.time() - start
    start = time.time()
    metrics = runner.test()
    return runner, metrics, train_seconds, time.time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='report folder')
    parser.add_argument('--data', default='data/synthetic', help='dataset folder')
    parser.add_argument('--det-iters', type=int, default=120)
    parser.add_argument('--seg-iters', type=int, default=150)
    parser.add_argument('--smoke', action='store_true', help='a few iterations, tiny set (CI)')
    parser.add_argument(
        '--default-malloc', action='store_true', help="glibc's default allocator behaviour"
    )
    args = parser.parse_args(argv)
    if not args.default_malloc:
        keep_freed_memory()  # ~17% faster training steps here (docs/benchmarks.md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / 'data' if args.smoke else Path(args.data)
    started = time.time()
    if not (data / 'coco' / 'annotations' / 'instances_val2017.json').is_file():
        sizes = dict(num_train=4, num_val=2, size=(128, 128)) if args.smoke else {}
        print(f'writing the synthetic dataset to {data}: {write_dataset(str(data), **sizes)}')
    det_iters, seg_iters = (2, 2) if args.smoke else (args.det_iters, args.seg_iters)

    det_cfg = make_config(DET_CONFIG, data, out / 'maskrcnn', det_iters, args.smoke)
    det_runner, det_metrics, det_train, det_eval = run_job(det_cfg)
    draw_detections(det_runner, out / 'predictions_maskrcnn.png', 2 if args.smoke else 4)

    seg_cfg = make_config(SEG_CONFIG, data, out / 'semfpn', seg_iters, args.smoke)
    seg_runner, seg_metrics, seg_train, seg_eval = run_job(seg_cfg)
    iou = segmentation_report(seg_runner, out / 'predictions_semfpn.png', 2 if args.smoke else 4)
    classes = seg_runner.test_dataloader.dataset.metainfo['classes']

    total = time.time() - started
    summary = {
        'box AP': 100 * float(det_metrics['coco/bbox_mAP']),
        'box AP50': 100 * float(det_metrics['coco/bbox_mAP_50']),
        'mask AP': 100 * float(det_metrics['coco/segm_mAP']),
        'mIoU': float(seg_metrics['mIoU']),
        'per-class IoU': {name: round(100 * float(value), 1) for name, value in zip(classes, iou)},
        'seconds': dict(
            det_train=round(det_train),
            det_eval=round(det_eval),
            seg_train=round(seg_train),
            seg_eval=round(seg_eval),
            total=round(total),
        ),  # fmt: skip
    }
    lines = [
        '# mmeffformer demo report',
        '',
        f'Synthetic shapes ({data}), EfficientFormer-l1 trained from scratch on '
        f'{torch.get_num_threads()} CPU threads; torch {torch.__version__}.',
        '',
        f'- Mask R-CNN: {det_iters} iterations, train {det_train:.0f} s, eval {det_eval:.0f} s: '
        f'box AP {summary["box AP"]:.1f}, AP50 {summary["box AP50"]:.1f}, '
        f'mask AP {summary["mask AP"]:.1f}',
        f'- Semantic FPN: {seg_iters} iterations, train {seg_train:.0f} s, eval {seg_eval:.0f} s: '
        f'mIoU {summary["mIoU"]:.1f}',
        f'- whole demo: {total:.0f} s',
        '',
        '| class | IoU |',
        '|---|---|',
        *[f'| {name} | {value} |' for name, value in summary['per-class IoU'].items()],
        '',
        'Pictures: predictions_maskrcnn.png (predictions and ground truth), '
        'predictions_semfpn.png (image | truth | prediction).',
    ]
    (out / 'report.md').write_text('\n'.join(lines) + '\n')
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
