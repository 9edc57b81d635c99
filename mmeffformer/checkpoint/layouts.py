"""Recognise checkpoint files: unwrap them, split off the backbone, name the layout."""

from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple

import torch

StateDict = Dict[str, torch.Tensor]

LAYOUTS = ('ours', 'authors', 'timm', 'mmpretrain')
FAMILIES = ('v1', 'v2')

#: Top-level prefixes of detector / segmentor parts that are kept as they are
#: (mmdet 2.x / mmseg 0.x names of these parts are unchanged in mmdet 3 / mmseg 1).
DOWNSTREAM_PREFIXES = (
    'neck.',
    'rpn_head.',
    'roi_head.',
    'bbox_head.',
    'mask_head.',
    'decode_head.',
    'auxiliary_head.',
)


def unwrap_state_dict(checkpoint: Mapping) -> StateDict:
    """The tensors of a checkpoint saved as ``{'state_dict': ...}``, ``{'model': ...}`` or raw."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'A checkpoint must be a dict, got {type(checkpoint).__name__}')
    for wrapper in ('state_dict', 'model', 'module'):
        inner = checkpoint.get(wrapper)
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    state = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(
            'No tensors found in the checkpoint (looked under "state_dict", "model" and at '
            f'the top level; top-level keys: {sorted(checkpoint)[:10]})'
        )
    if all(key.startswith('module.') for key in state):  # saved from DataParallel
        state = {key[len('module.') :]: value for key, value in state.items()}
    return state


def split_prefix(state: StateDict, prefix: str = 'backbone.') -> Tuple[StateDict, StateDict]:
    """``(backbone tensors without the prefix, everything else)``.

    Files without any key under ``prefix`` are taken to be backbone-only.
    """
    if not any(key.startswith(prefix) for key in state):
        return dict(state), {}
    inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    outside = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return inside, outside


def detect_layout(state: StateDict) -> Tuple[str, str]:
    """``(layout, family)`` of backbone tensors, e.g. ``('timm', 'v2')``."""
    keys = set(state)
    has = lambda text: any(text in key for key in keys)  # noqa: E731
    family = 'v2' if has('mlp.mid') or has('talking_head') else 'v1'
    if 'patch_embed.0.weight' in keys:
        layout = 'authors'
    elif 'patch_embed.0.conv.weight' in keys:
        layout = 'mmpretrain'
    elif 'stem.conv1.weight' in keys or 'stem.conv1.bn.weight' in keys:
        layout = 'timm'
    elif 'stem.conv1.conv.weight' in keys:
        layout = 'ours'
    else:
        raise ValueError(
            'Unrecognised checkpoint layout: expected the stem of one of '
            f'{LAYOUTS} (e.g. "patch_embed.0.weight" for the authors\' files, '
            f'"stem.conv1.weight" for timm); first keys: {sorted(keys)[:8]}'
        )
    return layout, family


def is_downstream(state: StateDict) -> bool:
    """True for the authors' COCO / ADE20K backbones (they learn ``attention_biases_seg``)."""
    return any(key.endswith('attention_biases_seg') for key in state)


def is_whole_downstream_model(others: StateDict) -> bool:
    """True when the tensors beside the backbone are a detector's / segmentor's neck or heads."""
    return any(key.startswith(DOWNSTREAM_PREFIXES) for key in others)


def has_mmpretrain_output_norms(backbone: StateDict, others: StateDict) -> bool:
    """Whether an mmpretrain file's ``norm{i}`` tensors are a multi-output backbone's norms.

    mmpretrain names both alike: a classifier has one final norm, ``norm3``
    (LayerNorm or GroupNorm, same shapes); a downstream backbone built with
    ``out_indices=(0, 1, 2, 3)`` has GroupNorm output norms ``norm0``..``norm3``.
    Norms of stages other than the last, or a neck / heads beside the backbone,
    mean output norms.
    """
    stages = {int(m[1]) for m in map(re.compile(r'norm(\d)\.').match, backbone) if m}
    return bool(stages - {3}) or (bool(stages) and is_whole_downstream_model(others))
