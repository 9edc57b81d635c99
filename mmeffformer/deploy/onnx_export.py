"""ONNX export of a backbone or a Semantic FPN segmentor.

Choices (also in docs/deploy.md):

- TorchScript-based exporter (``dynamo=False``): it needs no extra packages and
  handles every op used here; opset 17 by default (the first with a native
  LayerNormalization).
- Fixed height and width: the attention biases are computed for one token
  grid and stored in the graph as constants, so another size needs another
  export. Only the batch axis can be made dynamic (``dynamic_batch``).
- Outputs: the backbone's four feature maps (``stage0`` .. ``stage3``); for a
  segmentor, the class logits resized to the input size (``seg_logits``),
  i.e. mmseg's ``encode_decode``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

DEFAULT_OPSET = 17


class SegmentorLogits(nn.Module):
    """mmseg ``encode_decode`` at a fixed size: images -> logits at input size."""

    def __init__(self, segmentor: nn.Module, size: Tuple[int, int]) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.meta = [dict(img_shape=tuple(size), ori_shape=tuple(size), pad_shape=tuple(size))]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.segmentor.encode_decode(images, self.meta * images.shape[0])


def exportable(model: nn.Module, scope: str, part: str, size: Tuple[int, int]) -> nn.Module:
    """The module to trace: the backbone itself, or a segmentor's logits."""
    if part == 'backbone':
        return model
    if scope != 'mmseg':
        raise ValueError(
            f"ONNX export of a whole model supports mmseg segmentors only, got scope '{scope}' "
            "(export the detector's backbone with part='backbone')"
        )
    return SegmentorLogits(model, size)


def output_names(part: str) -> List[str]:
    return [f'stage{i}' for i in range(4)] if part == 'backbone' else ['seg_logits']


def export_onnx(
    module: nn.Module,
    path: str,
    size: Tuple[int, int],
    names: Sequence[str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    batch: int = 1,
) -> None:
    """Trace ``module`` on a ``(batch, 3, H, W)`` input and write ``path``."""
    module.eval()
    example = torch.rand(batch, 3, *size)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in ['image', *names]}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=['image'],
            output_names=list(names),
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
