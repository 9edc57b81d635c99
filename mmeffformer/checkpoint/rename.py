"""Rename backbone tensors from the authors', timm and mmpretrain layouts to ours.

Conversion runs in three steps:

1. a layout-specific table places every key in the stem, a downsampler, a block
   ``(stage, index, rest)``, an output norm, or drops it (classifier heads);
2. block indices are renumbered per stage: the authors, timm and mmpretrain
   count the parameter-free ``Flat`` module (and mmpretrain the downsampler) as
   a block, we do not;
3. the key inside a block is renamed by a table shared by all layouts.

A key that no rule places raises ``KeyError``: a conversion never silently loses
a tensor.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch

from mmeffformer.utils.token_offsets import first_appearance_offset_index

from .layouts import (
    StateDict,
    detect_layout,
    has_mmpretrain_output_norms,
    is_downstream,
    split_prefix,
    unwrap_state_dict,
)

# Child names the sources use for (conv, norm) pairs, mapped to ours.
_PAIR = {'0': 'conv', '1': 'norm', 'conv': 'conv', 'bn': 'norm', 'norm': 'norm', 'proj': 'conv'}
# The authors' V2 attention output is Sequential(act, conv, BN).
_PROJ = {'1': 'conv', '2': 'norm', 'conv': 'conv', 'bn': 'norm'}
_STEM_AUTHORS = {'0': 'conv1.conv', '1': 'conv1.norm', '3': 'conv2.conv', '4': 'conv2.norm'}

Placement = Tuple  # ('key', name) | ('block', stage, index, rest) | ('drop', reason)
Rule = Tuple[str, Callable[[re.Match], Placement]]


def _structure_rules(layout: str, family: str, output_norms: bool = False) -> List[Rule]:
    """Step 1 tables: where each top-level key of a layout belongs.

    ``output_norms``: an mmpretrain file's ``norm{i}`` are a multi-output
    backbone's output norms (kept), not a classifier's final norm (dropped).
    """
    classifier = lambda m: ('drop', 'classifier head')  # noqa: E731
    if layout == 'authors':
        rules: List[Rule] = [
            (
                r'patch_embed\.([0134])\.(.+)',
                lambda m: ('key', f'stem.{_STEM_AUTHORS[m[1]]}.{m[2]}'),
            ),
            (
                r'network\.([0246])\.(\d+)\.(.+)',
                lambda m: ('block', int(m[1]) // 2, int(m[2]), m[3]),
            ),
            (r'norm([0246])\.(.+)', lambda m: ('key', f'out_norms.{int(m[1]) // 2}.{m[2]}')),
            (r'(norm|head|dist_head)\.(.+)', classifier),
        ]
        if family == 'v1':
            rules.append(
                (
                    r'network\.([135])\.(proj|norm)\.(.+)',
                    lambda m: (
                        'key',
                        f'stages.{(int(m[1]) + 1) // 2}.downsample.{_PAIR[m[2]]}.{m[3]}',
                    ),
                )
            )
        else:
            rules += [
                (
                    r'network\.([13])\.(proj|norm)\.(.+)',
                    lambda m: (
                        'key',
                        f'stages.{(int(m[1]) + 1) // 2}.downsample.conv.{_PAIR[m[2]]}.{m[3]}',
                    ),
                ),
                (
                    r'network\.5\.(conv|bn)\.(.+)',
                    lambda m: ('key', f'stages.3.downsample.conv.{_PAIR[m[1]]}.{m[2]}'),
                ),
                (r'network\.5\.attn\.(.+)', lambda m: ('block', 3, -1, m[1])),
            ]
        return rules
    if layout == 'timm' and family == 'v1':
        return [
            (r'stem\.(conv[12])\.(.+)', lambda m: ('key', f'stem.{m[1]}.conv.{m[2]}')),
            (r'stem\.norm([12])\.(.+)', lambda m: ('key', f'stem.conv{m[1]}.norm.{m[2]}')),
            (
                r'stages\.(\d)\.downsample\.(conv|norm)\.(.+)',
                lambda m: ('key', f'stages.{m[1]}.downsample.{m[2]}.{m[3]}'),
            ),
            (r'stages\.(\d)\.blocks\.(\d+)\.(.+)', lambda m: ('block', int(m[1]), int(m[2]), m[3])),
            (r'(norm|head|head_dist)\.(.+)', classifier),
        ]
    if layout == 'timm':
        return [
            (
                r'stem\.(conv[12])\.(conv|bn)\.(.+)',
                lambda m: ('key', f'stem.{m[1]}.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (
                r'stages\.(\d)\.downsample\.conv\.(conv|bn)\.(.+)',
                lambda m: ('key', f'stages.{m[1]}.downsample.conv.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (r'stages\.3\.downsample\.attn\.(.+)', lambda m: ('block', 3, -1, m[1])),
            (r'stages\.(\d)\.blocks\.(\d+)\.(.+)', lambda m: ('block', int(m[1]), int(m[2]), m[3])),
            (r'(norm|head|head_dist)\.(.+)', classifier),
        ]
    if layout == 'mmpretrain' and family == 'v1':
        return [
            (
                r'patch_embed\.([01])\.(conv|bn)\.(.+)',
                lambda m: ('key', f'stem.conv{int(m[1]) + 1}.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (
                r'network\.([123])\.0\.(conv|bn)\.(.+)',
                lambda m: ('key', f'stages.{m[1]}.downsample.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (r'network\.(\d)\.(\d+)\.(.+)', lambda m: ('block', int(m[1]), int(m[2]), m[3])),
            (
                r'norm(\d)\.(.+)',
                (lambda m: ('key', f'out_norms.{m[1]}.{m[2]}'))
                if output_norms
                else (lambda m: ('drop', "classifier's final norm")),
            ),
            (r'head\.(.+)', classifier),
        ]
    raise ValueError(
        f'No conversion from the {layout!r} layout for EfficientFormer{family.upper()}'
    )


def _block_rules(family: str, attention: bool, downstream: bool) -> List[Rule]:
    """Step 3 tables: a key inside a block (or the V2 downsampling attention)."""
    table = 'attention_biases_seg' if downstream else 'attention_biases'
    unused = 'attention_biases' if downstream else 'attention_biases_seg'
    rules: List[Rule] = [
        (r'(?:layer_scale_|ls)([12])(?:\.gamma|\.weight)?', lambda m: ('key', f'ls{m[1]}.gamma')),
        (rf'(?:token_mixer\.)?{table}', lambda m: ('key', 'attn.bias.table')),
        (r'(?:token_mixer\.)?attention_bias_idxs(_seg)?', lambda m: ('index', m[1] is not None)),
        (rf'(?:token_mixer\.)?{unused}', lambda m: ('drop', 'bias table unused by this file')),
    ]
    if family == 'v1' and attention:
        rules += [
            (r'(norm[12])\.(.+)', lambda m: ('key', f'{m[1]}.{m[2]}')),
            (r'token_mixer\.(qkv|proj)\.(.+)', lambda m: ('key', f'attn.{m[1]}.{m[2]}')),
            (r'mlp\.(fc[12])\.(.+)', lambda m: ('key', f'mlp.{m[1]}.{m[2]}')),
        ]
    elif family == 'v1':
        rules += [
            (r'mlp\.(fc[12])\.(weight|bias)', lambda m: ('key', f'mlp.{m[1]}.conv.{m[2]}')),
            (r'mlp\.norm([12])\.(.+)', lambda m: ('key', f'mlp.fc{m[1]}.norm.{m[2]}')),
        ]
    else:
        rules += [
            # authors: fc1/norm1, mid/mid_norm, fc2/norm2; timm: {fc1,mid,fc2}.{conv,bn}
            (r'mlp\.(fc[12]|mid)\.(weight|bias)', lambda m: ('key', f'mlp.{m[1]}.conv.{m[2]}')),
            (r'mlp\.norm([12])\.(.+)', lambda m: ('key', f'mlp.fc{m[1]}.norm.{m[2]}')),
            (r'mlp\.mid_norm\.(.+)', lambda m: ('key', f'mlp.mid.norm.{m[1]}')),
            (
                r'mlp\.(fc[12]|mid)\.(conv|bn)\.(.+)',
                lambda m: ('key', f'mlp.{m[1]}.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (
                r'(?:token_mixer\.)?q\.local\.(?:0\.)?(weight|bias)',
                lambda m: ('key', f'attn.q_local.{m[1]}'),
            ),
            (
                r'(?:token_mixer\.)?q\.proj\.(0|1|conv|bn)\.(.+)',
                lambda m: ('key', f'attn.q.{_PAIR[m[1]]}.{m[2]}'),
            ),
            (
                r'(?:token_mixer\.)?(q|k|v|v_local|stride_conv)\.(0|1|conv|bn)\.(.+)',
                lambda m: ('key', f'attn.{m[1]}.{_PAIR[m[2]]}.{m[3]}'),
            ),
            (
                r'(?:token_mixer\.)?proj\.(1|2|conv|bn)\.(.+)',
                lambda m: ('key', f'attn.proj.{_PROJ[m[1]]}.{m[2]}'),
            ),
            (
                r'(?:token_mixer\.)?(talking_head[12])\.(.+)',
                lambda m: ('key', f'attn.{m[1]}.{m[2]}'),
            ),
        ]
    return rules


def _place(key: str, rules: List[Rule]) -> Optional[Placement]:
    for pattern, handler in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return handler(match)
    return None


def check_bias_index(name: str, index: torch.Tensor) -> None:
    """Fail unless a stored offset index is the one we recompute for its grid."""
    num_queries, num_keys = index.shape
    key_side, query_side = math.isqrt(num_keys), math.isqrt(num_queries)
    if key_side**2 != num_keys or query_side**2 != num_queries:
        raise ValueError(f'{name}: index of shape {tuple(index.shape)} is not for square grids')
    stride = math.ceil(key_side / query_side)
    expected, _ = first_appearance_offset_index((query_side,) * 2, (key_side,) * 2, stride)
    if not torch.equal(index.long().cpu(), expected):
        raise ValueError(
            f'{name}: stored offset index differs from the offset rule; cannot convert'
        )


def to_ours(
    state: StateDict, layout: str, family: str, output_norms: bool = False
) -> Tuple[StateDict, Dict[str, str]]:
    """Convert backbone tensors to our key layout.

    ``output_norms`` keeps mmpretrain's ``norm{i}`` as output norms (see
    :func:`~.layouts.has_mmpretrain_output_norms`).

    Returns:
        ``(converted, dropped)`` where ``dropped`` maps each source key that was
        left out on purpose (classifier heads, recomputed indices, unused
        placeholders) to the reason.
    """
    if layout == 'ours':
        return dict(state), {}
    downstream = is_downstream(state)
    structure = _structure_rules(layout, family, output_norms)
    converted: StateDict = {}
    dropped: Dict[str, str] = {}
    blocks: Dict[Tuple[int, int], Dict[str, Tuple[str, torch.Tensor]]] = {}
    for key, value in state.items():
        placement = _place(key, structure)
        if placement is None:
            raise KeyError(f'Cannot place {key!r} from the {layout} {family} layout')
        if placement[0] == 'key':
            converted[placement[1]] = value
        elif placement[0] == 'drop':
            dropped[key] = placement[1]
        else:
            _, stage, index, rest = placement
            blocks.setdefault((stage, index), {})[rest] = (key, value)

    for stage in range(4):
        indices = sorted(i for s, i in blocks if s == stage and i >= 0)
        renumber = {source: ours for ours, source in enumerate(indices)}
        for source_index in [-1] + indices:
            members = blocks.get((stage, source_index))
            if not members:
                continue
            attention = any('qkv' in rest or 'talking_head' in rest for rest in members)
            rules = _block_rules(family, attention, downstream)
            if source_index < 0:
                prefix = 'stages.3.downsample.'
            else:
                prefix = f'stages.{stage}.blocks.{renumber[source_index]}.'
            for rest, (key, value) in members.items():
                placement = _place(rest, rules)
                if placement is None:
                    raise KeyError(f'Cannot place {key!r} from the {layout} {family} layout')
                if placement[0] == 'index':
                    if placement[1] == downstream:
                        check_bias_index(key, value)
                    dropped[key] = 'offset index, recomputed by the model'
                elif placement[0] == 'drop':
                    dropped[key] = placement[1]
                else:
                    name = placement[1]
                    if name.endswith('.gamma'):
                        value = value.reshape(-1)
                    converted[prefix + name] = value
    return converted, dropped


class ConvertedCheckpoint(NamedTuple):
    """A checkpoint file's backbone in our layout, and what was beside it."""

    backbone: StateDict
    others: StateDict  # tensors outside the backbone prefix (neck, heads, classifier)
    layout: str
    family: str
    dropped: Dict[str, str]  # backbone keys left out on purpose, with the reason
    downstream: bool  # the authors' COCO / ADE20K file (official bias tables)


def checkpoint_to_ours(checkpoint: Mapping, prefix: str = 'backbone.') -> ConvertedCheckpoint:
    """Unwrap a checkpoint, split off the backbone, recognise its layout, rename it."""
    state = unwrap_state_dict(checkpoint)
    backbone, others = split_prefix(state, prefix)
    layout, family = detect_layout(backbone)
    output_norms = layout == 'mmpretrain' and has_mmpretrain_output_norms(backbone, others)
    converted, dropped = to_ours(backbone, layout, family, output_norms)
    return ConvertedCheckpoint(converted, others, layout, family, dropped, is_downstream(backbone))
