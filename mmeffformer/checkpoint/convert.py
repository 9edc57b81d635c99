"""Convert a whole checkpoint file (any supported layout) to an mmengine checkpoint."""

from __future__ import annotations

import math
from typing import Dict, Mapping

import torch

from .layouts import StateDict, is_whole_downstream_model
from .reading import read_checkpoint
from .rename import checkpoint_to_ours


def official_bias_size(state: StateDict) -> int:
    """Image side an official-mode file was trained for, from its stage-4 tables."""
    sides = {
        math.isqrt(value.shape[1])
        for key, value in state.items()
        if key.startswith('stages.3.blocks.') and key.endswith('attn.bias.table')
    }
    if len(sides) != 1:
        raise ValueError(
            f'Expected one stage-4 bias grid in an official file, found {sorted(sides)}'
        )
    return sides.pop() * 32


def convert_checkpoint(checkpoint: Mapping) -> Dict:
    """Our layout for ``checkpoint``: backbone-only, or the whole downstream model.

    Classification files (authors' ImageNet, timm, mmpretrain) give the backbone
    alone; detector / segmentor files keep neck and heads under their names and
    get the backbone under ``backbone.``. ``meta['mmeffformer']`` records the
    source layout and, for the authors' downstream files, the ``attn_bias``
    settings the model needs.
    """
    converted, others, layout, family, dropped, downstream = checkpoint_to_ours(checkpoint)
    whole_model = is_whole_downstream_model(others)
    info = dict(source_layout=layout, family=family, dropped=sorted(dropped))
    if downstream:
        info.update(attn_bias='official', attn_bias_size=official_bias_size(converted))
    if whole_model:
        out = {f'backbone.{key}': value for key, value in converted.items()}
        out.update(others)
    else:
        out = converted
        info['dropped'] += sorted(others)
    return dict(state_dict=out, meta=dict(mmeffformer=info))


def save_converted(src: str, dst: str) -> Dict:
    """Read ``src``, convert it and save it to ``dst``; returns the meta info."""
    checkpoint = read_checkpoint(src)
    result = convert_checkpoint(checkpoint)
    torch.save(result, dst)
    return result['meta']['mmeffformer']
