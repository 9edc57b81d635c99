"""Random RoIs for RoIAlign and RoI extractor tests."""

from __future__ import annotations

import torch


def random_rois(count: int, images: int, width: float, height: float, seed: int) -> torch.Tensor:
    """RoIs in shuffled image order, some reaching past the map, plus edge cases."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 1.2
    corner -= torch.tensor([width, height]) * 0.1
    size = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.7
    index = torch.randint(0, images, (count, 1), generator=generator).float()
    rois = torch.cat([index, corner, corner + size], 1)
    rois[0, 1:] = torch.tensor([0.0, 0.0, width, height])  # the whole map
    rois[1, 3:] = rois[1, 1:3]  # empty
    rois[2, 1:] = torch.tensor([-30.0, -30.0, width + 30, height + 30])  # beyond every edge
    rois[3, 1:] = torch.tensor([width - 1.0, height - 1.0, width, height])  # last cells
    return rois
