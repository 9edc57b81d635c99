"""The free height and width of a one-image program for ``torch.export``."""

from __future__ import annotations

import math
from typing import Sequence

#: the smallest side an exported program serves (an FPN's stride-64 map must be larger
#: than 1 x 1)
MIN_SIDE = 96


def image_dims(max_shape: Sequence[int], divisor: int = 1) -> tuple:
    """``dynamic_shapes`` for one ``(1, C, H, W)`` image: height and width free from
    :data:`MIN_SIDE` to ``max_shape``, multiples of ``divisor`` when it is above 1 (a
    detector's padded image)."""
    from torch.export import Dim

    dims = [
        Dim(name, min=math.ceil(MIN_SIDE / divisor), max=math.ceil(int(bound) / divisor))
        for name, bound in zip(('height', 'width'), max_shape)
    ]
    if divisor > 1:
        dims = [dim * divisor for dim in dims]
    return ({2: dims[0], 3: dims[1]},)
