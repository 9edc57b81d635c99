"""The README's first command: train and evaluate both recipes on generated data, on the CPU.

1. writes the synthetic COCO-format and ADE20K-layout sets (if missing);
2. picks the precision (float32, or bf16 where this CPU has it natively and it measured faster);
3. trains Semantic FPN + EfficientFormer-l1, then Mask R-CNN + EfficientFormer-l1 whose
   backbone starts from the Semantic FPN one (the recipes start from pretrained backbones;
   no ImageNet weights can be downloaded here), each with mmengine's runner from
   ``configs/demo/``, evaluating on the held-out split (mmseg IoUMetric, mmdet CocoMetric);
4. exports both trained models to ONNX and evaluates each file in ONNX Runtime and
   OpenVINO with the same test loop and metric (next to PyTorch's; ``--no-export`` skips
   this step);
5. prints a table of metrics against targets and writes ``report.md``, prediction
   pictures and training curves (from mmengine's scalars.json) to ``--out``.

The terminal shows one progress line per phase; mmengine's full logs are in the work dirs.
``--smoke`` runs the same path with a few iterations on a tiny set (CI).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Deprecation chatter of the pinned stack at import time; nothing a demo user can act on.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.datasets.synthetic import write_dataset  # noqa: E402
from mmeffformer.demo.exported import evaluate_exported  # noqa: E402
from mmeffformer.demo.figures import grid, read_scalars, titled, training_curves  # noqa: E402
from mmeffformer.demo.precision_choice import (  # noqa: E402
    PRECISIONS,
    choose_precision,
    training_step_seconds,
)
from mmeffformer.demo.progress import ProgressHook, console_to  # noqa: E402
from mmeffformer.demo.report import (  # noqa: E402
    TARGETS,
    DemoResult,
    report_markdown,
    summary_table,
)
from mmeffformer.engine import amp_optim_wrapper  # noqa: E402
from mmeffformer.engine.optimizers import unfuse_where_unsupported  # noqa: E402
from mmeffformer.utils import flush_denormals, keep_freed_memory  # noqa: E402
from mmeffformer.utils.cpu_facts import cpu_has_native_bf16, cpu_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DET_CONFIG = ROOT / 'configs' / 'demo' / 'maskrcnn_effformer_l1_synthetic.py'
SEG_CONFIG = ROOT / 'configs' / 'demo' / 'semfpn_effformer_l1_synthetic.py'
DEFAULT_SEED = 0
SCORE_THRESHOLD = 0.5  # boxes drawn in the prediction pictures
RUNTIMES = ('onnxruntime', 'openvino')


def point_to_data(cfg: Config, root: Path, detection: bool) -> None:
    """Aim every dataloader (and the COCO evaluators) at ``root``."""
    data_root = f'{root}/coco/' if detection else f'{root}/ade/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    if detection:
        for name in ('val_evaluator', 'test_evaluator'):
            evaluators = cfg[name] if isinstance(cfg[name], list) else [cfg[name]]
            for evaluator in evaluators:
                evaluator.ann_file = f'{data_root}annotations/instances_val2017.json'


def make_config(
    path: Path,
    data: Path,
    work_dir: Path,
    iters: Optional[int],
    evaluations: int,
    seed: int,
    smoke: bool,
) -> Config:
    """A demo config with its data, work dir, schedule length and seed; the held-out
    split is evaluated ``evaluations`` times, the last after the final iteration.
    ``iters=None`` keeps the config's schedule length."""
    cfg = Config.fromfile(str(path))
    unfuse_where_unsupported(cfg)
    iters = cfg.train_cfg.max_iters if iters is None else iters
    point_to_data(cfg, data, cfg.default_scope == 'mmdet')
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = max(1, iters // evaluations)
    cfg.default_hooks.checkpoint.update(interval=iters, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 1 if smoke else 10
    for scheduler in cfg.param_scheduler:  # the decay phase follows the schedule's length
        if scheduler.get('end', 0) > iters or scheduler.get('type') != 'LinearLR':
            scheduler.end = iters
            if 'T_max' in scheduler:
                scheduler.T_max = iters
    if smoke:
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
    return cfg


def use_precision(cfg: Config, precision: str) -> None:
    """bf16: the training forward under CPU autocast, evaluation too (float32 metrics)."""
    if precision == 'bfloat16':
        cfg.optim_wrapper = amp_optim_wrapper(cfg.optim_wrapper, 'cpu', 'bfloat16')
        cfg.val_cfg = dict(type='mmeffformer.AutocastValLoop', fp16=True)
        cfg.test_cfg = dict(type='mmeffformer.AutocastTestLoop', fp16=True)


#: What the progress line shows after each held-out evaluation: key -> (label, to percent).
HEADLINES = {
    'mIoU': ('mIoU', 1.0),
    'box/bbox_mAP': ('box AP', 100.0),
    'mask/segm_mAP': ('mask AP', 100.0),
}


def train_phase(cfg: Config, phase: str) -> Tuple[Runner, Dict[str, float], float]:
    """Train (with held-out evaluations) under a progress line; mmengine's console
    output goes to ``<work dir>/console.log``. Returns runner, last metrics, seconds."""
    start = time.perf_counter()
    with console_to(Path(cfg.work_dir) / 'console.log'):
        runner = Runner.from_cfg(cfg)
        progress = ProgressHook(phase, HEADLINES)
        runner.register_hook(progress)
        runner.train()
    return runner, progress.metrics, time.perf_counter() - start


def scalars_of(runner: Runner) -> Dict[str, List[tuple]]:
    return read_scalars(Path(runner.log_dir) / 'vis_data' / 'scalars.json')


def predict(runner: Runner, count: int) -> list:
    """The model's predictions on the first ``count`` held-out images (float32)."""
    from mmeffformer.engine import float32_predictions, loop_autocasts

    samples = []
    runner.model.eval()
    autocast = loop_autocasts(runner.cfg.get('test_cfg'))
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16, enabled=bool(autocast)):
        for index, data in enumerate(runner.test_dataloader):
            if index == count:
                break
            samples.append(float32_predictions(runner.model.test_step(data))[0])
    return samples


def detection_pictures(runner: Runner, path: Path, count: int) -> None:
    """Rows of "ground truth" | "prediction (score >= t)" on held-out images."""
    from mmdet.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer(name=f'demo_det_{time.time()}')
    visualizer.dataset_meta = runner.test_dataloader.dataset.metainfo
    rows = []
    for sample in predict(runner, count):
        image = cv2.imread(sample.img_path)[..., ::-1].copy()
        panels = []
        titles = ('ground truth', f'prediction, score >= {SCORE_THRESHOLD}')
        for title, truth in zip(titles, (True, False)):
            visualizer.add_datasample(
                title, image, sample, draw_gt=truth, draw_pred=not truth, show=False,
                pred_score_thr=SCORE_THRESHOLD,
            )  # fmt: skip
            panels.append(titled(visualizer.get_image()[..., ::-1].copy(), title))
        rows.append(panels)
    cv2.imwrite(str(path), grid(rows))


def segmentation_pictures(runner: Runner, path: Path, count: int) -> None:
    """Rows of "image" | "ground truth" | "prediction" on held-out images."""
    palette = np.array(runner.test_dataloader.dataset.metainfo['palette'], np.uint8)[:, ::-1]
    rows = []
    for sample in predict(runner, count):
        truth = sample.gt_sem_seg.data[0].numpy()
        shown = np.where(truth == 255, 0, truth)  # ignored border pixels as background
        rows.append([
            titled(cv2.imread(sample.img_path), 'image'),
            titled(palette[shown], 'ground truth'),
            titled(palette[sample.pred_sem_seg.data[0].numpy()], 'prediction'),
        ])  # fmt: skip
    cv2.imwrite(str(path), grid(rows))


def per_class(metrics: Dict[str, float], prefix: str, suffix: str, scale: float) -> dict:
    return {
        key[len(prefix) : -len(suffix) or None]: scale * float(value)
        for key, value in metrics.items()
        if key.startswith(prefix) and key.endswith(suffix)
    }


def int8_calibration_images(smoke: bool, no_int8: bool) -> int:
    """How many training images calibrate the INT8 rows; 0: no INT8 rows (``--no-int8``,
    or the quantize extra, NNCF and torchao, is not installed)."""
    extra = all(importlib.util.find_spec(name) for name in ('nncf', 'torchao'))
    return (2 if smoke else 32) if extra and not no_int8 else 0


def export_and_evaluate(
    args: argparse.Namespace, out: Path, seg_runner: Runner, det_runner: Runner
) -> List[dict]:
    """Both trained models exported and evaluated in each runtime: the deployment rows.
    INT8 rows are calibrated on training images; the smoke run leaves the PyTorch INT8
    program uncompiled (Inductor takes minutes)."""
    int8_images = int8_calibration_images(args.smoke, args.no_int8)
    # ExecuTorch on request: lowering both models (fp32 and INT8) takes minutes
    forms = ['ONNX Runtime', 'OpenVINO'] + (['INT8 in OpenVINO and PyTorch'] if int8_images else [])
    forms += ['ExecuTorch'] if args.executorch else []
    print(f'exporting both models, evaluating them in {", ".join(forms[:-1])} and {forms[-1]}')
    with console_to(out / 'deployment.log'):
        return [
            row
            for name, runner in (('Semantic FPN', seg_runner), ('Mask R-CNN', det_runner))
            for row in evaluate_exported(
                name, runner, out, RUNTIMES, int8_images, not args.smoke, args.executorch
            )
        ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='report folder')
    parser.add_argument('--data', default='data/synthetic', help='dataset folder')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED, help='training seed')
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='auto',
        help='auto: bf16 where this CPU has it natively and it measured faster, else float32',
    )
    parser.add_argument('--det-iters', type=int, help="default: the demo config's max_iters")
    parser.add_argument('--seg-iters', type=int, help="default: the demo config's max_iters")
    parser.add_argument('--smoke', action='store_true', help='a few iterations, tiny set (CI)')
    parser.add_argument(
        '--default-malloc', action='store_true', help="glibc's default allocator behaviour"
    )
    parser.add_argument('--keep-denormals', action='store_true', help='do not flush denormals')
    parser.add_argument(
        '--no-int8', action='store_true', help='leave out the INT8 rows (quantizing both models)'
    )
    parser.add_argument(
        '--no-export', action='store_true', help='leave out exporting and the runtimes table'
    )
    parser.add_argument(
        '--executorch',
        action='store_true',
        help='add ExecuTorch rows (needs the mobile extra; lowering takes minutes)',
    )
    args = parser.parse_args(argv)
    if args.executorch and args.no_export:
        parser.error('--executorch adds rows to the export step, which --no-export leaves out')
    if args.executorch and not importlib.util.find_spec('executorch'):
        parser.error("--executorch needs the mobile extra: pip install 'mmeffformer[mobile]'")
    if not args.default_malloc:
        keep_freed_memory()  # glibc would fault every feature map in again
    if not args.keep_denormals:
        flush_denormals()  # fresh heads' gradients are full of slow denormals
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / 'data' if args.smoke else Path(args.data)
    seconds: Dict[str, float] = {}
    started = time.perf_counter()
    if not (data / 'coco' / 'annotations' / 'instances_val2017.json').is_file():
        sizes = dict(num_train=4, num_val=2, size=(128, 128)) if args.smoke else {}
        print(f'writing the synthetic dataset to {data}: {write_dataset(str(data), **sizes)}')
        seconds['data'] = time.perf_counter() - started
    det_iters, seg_iters = (2, 2) if args.smoke else (args.det_iters, args.seg_iters)
    shown = 2 if args.smoke else 4

    seg_cfg = make_config(SEG_CONFIG, data, out / 'semfpn', seg_iters, 2, args.seed, args.smoke)
    det_cfg = make_config(DET_CONFIG, data, out / 'maskrcnn', det_iters, 2, args.seed, args.smoke)
    seg_iters, det_iters = seg_cfg.train_cfg.max_iters, det_cfg.train_cfg.max_iters

    start = time.perf_counter()
    with console_to(out / 'precision_probe.log'):
        precision, why = choose_precision(
            args.precision, lambda: training_step_seconds(det_cfg), out / 'precision_probe.json'
        )
    seconds['precision choice'] = time.perf_counter() - start
    print(f'precision: {precision} ({why})')
    for cfg in (seg_cfg, det_cfg):
        use_precision(cfg, precision)

    seg_runner, seg_metrics, seconds['Semantic FPN'] = train_phase(seg_cfg, '[1/2] Semantic FPN')
    # The detector's backbone starts from the segmentation one, as the recipe's starts
    # from an ImageNet-pretrained one (init_cfg; the loader takes the backbone's tensors).
    det_cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=f'{seg_cfg.work_dir}/iter_{seg_iters}.pth'
    )
    det_runner, det_metrics, seconds['Mask R-CNN'] = train_phase(det_cfg, '[2/2] Mask R-CNN')

    start = time.perf_counter()
    with console_to(out / 'pictures.log'):
        detection_pictures(det_runner, out / 'predictions_maskrcnn.png', shown)
        segmentation_pictures(seg_runner, out / 'predictions_semfpn.png', shown)
        training_curves(
            {'Semantic FPN': scalars_of(seg_runner), 'Mask R-CNN': scalars_of(det_runner)},
            {
                'Semantic FPN': {'mIoU': (TARGETS['mIoU'], 1.0)},
                'Mask R-CNN': {
                    'box/bbox_mAP': (TARGETS['box AP'], 100.0),
                    'mask/segm_mAP': (TARGETS['mask AP'], 100.0),
                },
            },
            out / 'training_curves.png',
        )
    seconds['pictures'] = time.perf_counter() - start

    deployment: List[dict] = []
    if not args.no_export:
        start = time.perf_counter()
        deployment = export_and_evaluate(args, out, seg_runner, det_runner)
        seconds['export and runtimes'] = time.perf_counter() - start

    info = cpu_info()
    result = DemoResult(
        seed=args.seed,
        precision=precision,
        precision_reason=why,
        machine=dict(
            cpu=info['model'],
            threads=str(torch.get_num_threads()),
            bf16=('native (' + ', '.join(info['bf16_flags']) + ')')
            if cpu_has_native_bf16()
            else 'not native (emulated, slower than float32)',
            torch=torch.__version__,
        ),
        metrics={
            'box AP': 100 * float(det_metrics['box/bbox_mAP']),
            'mask AP': 100 * float(det_metrics['mask/segm_mAP']),
            'mIoU': float(seg_metrics['mIoU']),
            'box AP50': 100 * float(det_metrics['box/bbox_mAP_50']),
            'mask AP50': 100 * float(det_metrics['mask/segm_mAP_50']),
            'aAcc': float(seg_metrics['aAcc']),
        },
        per_class={
            'box AP': per_class(det_metrics, 'box/', '_precision', 100.0),
            'mask AP': per_class(det_metrics, 'mask/', '_precision', 100.0),
            'IoU': per_class(seg_metrics, 'IoU.', '', 1.0),
        },
        seconds=seconds,
        iterations={'Semantic FPN': seg_iters, 'Mask R-CNN': det_iters},
        pictures=['predictions_maskrcnn.png', 'predictions_semfpn.png', 'training_curves.png'],
        deployment=deployment,
    )
    (out / 'report.md').write_text(report_markdown(result))
    (out / 'metrics.json').write_text(json.dumps(vars(result), indent=2))
    print()
    print(summary_table(result))
    print(f'\nreport: {out / "report.md"}; full logs: {out}/semfpn, {out}/maskrcnn')
    return 0


if __name__ == '__main__':
    sys.exit(main())
