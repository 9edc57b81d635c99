"""An exported file checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn


@dataclass
class Verification:
    """Largest differences between ONNX Runtime and PyTorch, per output."""

    names: List[str]
    max_abs: List[float]
    max_rel: List[float]  # max |ort - torch| / max |torch|

    def worst_rel(self) -> float:
        return max(self.max_rel)

    def __str__(self) -> str:
        rows = (
            f'{name}: max abs diff {a:.3g}, relative to max |output| {r:.3g}'
            for name, a, r in zip(self.names, self.max_abs, self.max_rel)
        )
        return '\n'.join(rows)


def verify_onnx(
    module: nn.Module, path: str, size: Tuple[int, int], names: Sequence[str], batch: int = 1
) -> Verification:
    """Run the file with ONNX Runtime (CPU) and PyTorch on the same random images."""
    import onnxruntime

    images = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(list(names), {'image': images.numpy()})
    with torch.no_grad():
        want = module(images)
    if isinstance(want, torch.Tensor):
        want = [want]
    max_abs, max_rel = [], []
    for ort_out, torch_out in zip(got, want):
        torch_out = torch_out.numpy()
        if ort_out.shape != torch_out.shape:
            raise AssertionError(
                f'ONNX output shape {ort_out.shape} differs from PyTorch {torch_out.shape}'
            )
        diff = float(np.abs(ort_out - torch_out).max())
        max_abs.append(diff)
        max_rel.append(diff / max(float(np.abs(torch_out).max()), 1e-12))
    return Verification(list(names), max_abs, max_rel)
