"""An exported file (ONNX, or an ExecuTorch program) checked against PyTorch at several input
sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mmeffformer.models.graphs.detector_graph import DetectorGraph, pad_to_divisor
from mmeffformer.runtimes.backends import build_backend
from mmeffformer.runtimes.program_detector import DetectorTrunk


@dataclass
class Verification:
    """Largest differences between a runtime and PyTorch at one input size, per output."""

    size: Tuple[int, int]
    names: List[str] = field(default_factory=list)
    max_abs: List[float] = field(default_factory=list)
    max_rel: List[float] = field(default_factory=list)  # relative to the output's scale

    def add(self, name: str, max_abs: float, max_rel: float) -> None:
        self.names.append(name)
        self.max_abs.append(max_abs)
        self.max_rel.append(max_rel)

    def worst_rel(self) -> float:
        return max(self.max_rel, default=0.0)

    def __str__(self) -> str:
        rows = (
            f'{name}: max abs diff {a:.3g}, relative to max |output| {r:.3g}'
            for name, a, r in zip(self.names, self.max_abs, self.max_rel)
        )
        return f'input {self.size[0]}x{self.size[1]}:\n  ' + '\n  '.join(rows)


def second_size(size: Tuple[int, int]) -> Tuple[int, int]:
    """A size near ``size`` that is neither square nor a multiple of 32 on either side."""
    height = max(33, round(size[0] * 0.8))
    width = max(height + 7, round(size[1] * 1.1))
    while height % 32 == 0:
        height += 3
    while width % 32 == 0 or width == height:
        width += 5
    return height, width


def _compare_maps(result: Verification, names, got, want) -> None:
    for name, runtime_out, torch_out in zip(names, got, want):
        torch_out = torch_out.numpy()
        if runtime_out.shape != torch_out.shape:
            raise AssertionError(
                f'{name}: exported output shape {runtime_out.shape} differs from PyTorch '
                f'{torch_out.shape}'
            )
        diff = float(np.abs(runtime_out - torch_out).max())
        result.add(name, diff, diff / max(float(np.abs(torch_out).max()), 1e-12))


def _compare_detections(result: Verification, got, want, score_thr: float) -> None:
    """Each PyTorch detection above ``score_thr`` against the file's closest of its class."""
    side = float(max(result.size))
    want = [w.numpy() for w in want]
    keep_w, keep_g = want[1] >= score_thr, got[1] >= score_thr
    want = [w[keep_w] for w in want]
    got = [g[keep_g] for g in got]
    count_gap = abs(len(want[0]) - len(got[0]))
    result.add(f'detections (score >= {score_thr})', count_gap, math.inf if count_gap else 0.0)
    if count_gap or not len(want[0]):
        return
    box_err, score_err, mask_err = 0.0, 0.0, 0.0
    for index in range(len(want[0])):
        same_class = np.nonzero(got[2] == want[2][index])[0]
        if not len(same_class):
            result.add('labels', 1, math.inf)
            return
        gaps = np.abs(got[0][same_class] - want[0][index]).max(axis=1)
        match = same_class[int(np.argmin(gaps))]
        box_err = max(box_err, float(gaps.min()))
        score_err = max(score_err, float(abs(got[1][match] - want[1][index])))
        if len(want) > 3:
            mask_err = max(mask_err, float(np.abs(got[3][match] - want[3][index]).max()))
    result.add('boxes (pixels; relative to the image side)', box_err, box_err / side)
    result.add('scores', score_err, score_err)
    if len(want) > 3:
        result.add('masks (probabilities)', mask_err, mask_err)


def _compare_networks(
    result: Verification, forward, trunk: DetectorTrunk, size_divisor: int, image
) -> None:
    """An ExecuTorch detector program's ``forward`` method (FPN features, the dense head's
    scores and box deltas per level) against ``trunk``, the same networks in PyTorch, on
    ``image`` padded as the program's runtime pads it."""
    padded = pad_to_divisor(image, size_divisor).contiguous()
    with torch.no_grad():
        want = trunk(padded)
    got = [g.numpy() for g in forward.execute([padded])]
    _compare_maps(result, trunk.output_names(len(want)), got, want)


def verify_file(
    module: nn.Module,
    path: str,
    sizes: Sequence[Tuple[int, int]],
    names: Sequence[str],
    batch: int = 1,
    backend: str = 'onnxruntime',
    score_thr: float = 0.3,
) -> List[Verification]:
    """Run the file and PyTorch on the same random images, one check per size. An INT8
    detector program's networks are compared instead of its detections: INT8 moves scores
    across the threshold, so detections cannot be matched one by one."""
    runtime = build_backend(backend, path, precision='fp32')
    detector = isinstance(module, DetectorGraph)
    int8_networks = detector and backend == 'executorch' and runtime.precision == 'int8'
    if int8_networks:
        trunk = DetectorTrunk(module).eval()
        forward = runtime.program.load_method('forward')
    results = []
    for seed, size in enumerate(sizes):
        generator = torch.Generator().manual_seed(seed)
        if detector:  # normalised images: roughly zero mean, unit variance
            images = torch.randn(1, 3, *size, generator=generator)
        else:
            images = torch.rand(batch, 3, *size, generator=generator)
        result = Verification(tuple(size))
        if int8_networks:
            _compare_networks(result, forward, trunk, module.size_divisor, images)
            results.append(result)
            continue
        got = runtime(images.numpy())
        with torch.no_grad():
            want = module(images)
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        if detector:
            _compare_detections(result, got, want, score_thr)
        else:
            _compare_maps(result, names, got, want)
        results.append(result)
    return results


def report(results: Sequence[Verification], title: str, tolerance: float) -> int:
    """Print the differences under ``title``; the exit status: 1 when one exceeds
    ``tolerance`` (relative to its output's scale), else 0."""
    print(title)
    for result in results:
        print(result)
    worst = max(result.worst_rel() for result in results)
    if worst > tolerance:
        print(f'FAILED: relative difference {worst:.3g} > {tolerance}')
        return 1
    return 0


#: the name of :func:`verify_file` from when it checked ONNX files only
verify_onnx = verify_file
