"""EfficientFormer V1 written independently of mmeffformer, for fidelity tests.

``authors_v1_state`` makes random weights under the authors' ImageNet keys (from
the facts doc); ``reference_v1_features`` computes the stage outputs straight
from those tensors with the paper's equations, using only torch.nn.functional.
The timm and mmpretrain layouts are derived from the authors' keys here, by
the renaming rules of those projects, in the opposite direction to ours.
"""

from __future__ import annotations

import itertools
import re
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

ARCHS = {
    'l1': ((48, 96, 224, 448), (3, 2, 6, 4), 1),
    'l3': ((64, 128, 320, 512), (4, 4, 12, 6), 4),
    'l7': ((96, 192, 384, 768), (6, 6, 18, 8), 8),
    # small enough for quick tests, with pool and attention blocks in stage 4
    'tiny': ((8, 16, 24, 32), (1, 1, 2, 3), 2),
}


def _rand(gen: torch.Generator, *shape: int, scale: float = 0.2) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _bn(state: Dict, name: str, channels: int, gen: torch.Generator) -> None:
    state[f'{name}.weight'] = 1 + _rand(gen, channels)
    state[f'{name}.bias'] = _rand(gen, channels)
    state[f'{name}.running_mean'] = _rand(gen, channels)
    state[f'{name}.running_var'] = 0.5 + torch.rand(channels, generator=gen)
    state[f'{name}.num_batches_tracked'] = torch.tensor(7)


def _conv(state: Dict, name: str, out_ch: int, in_ch: int, k: int, gen: torch.Generator) -> None:
    state[f'{name}.weight'] = _rand(gen, out_ch, in_ch, k, k, scale=(in_ch * k * k) ** -0.5)
    state[f'{name}.bias'] = _rand(gen, out_ch)


def _linear(state: Dict, name: str, out_f: int, in_f: int, gen: torch.Generator) -> None:
    state[f'{name}.weight'] = _rand(gen, out_f, in_f, scale=in_f**-0.5)
    state[f'{name}.bias'] = _rand(gen, out_f)


def bias_index(side: int) -> torch.Tensor:
    """The authors' offset numbering for a square grid (first appearance)."""
    points = list(itertools.product(range(side), range(side)))
    seen: Dict = {}
    index = [
        seen.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(seen))
        for a in points
        for b in points
    ]
    return torch.tensor(index).view(len(points), len(points))


def flat_index(depth: int, num_attention: int) -> int:
    """Authors' / timm block index taken by the parameter-free Flat in stage 4."""
    return depth - num_attention


def authors_block_indices(stage: int, depth: int, num_attention: int) -> List[int]:
    """Authors' block indices of a stage, skipping the Flat slot."""
    if stage != 3 or num_attention == 0:
        return list(range(depth))
    flat = flat_index(depth, num_attention)
    return [j if j < flat else j + 1 for j in range(depth)]


def authors_v1_state(arch: str, seed: int = 0, bias_grid: int = 7) -> Dict[str, torch.Tensor]:
    """Random authors-layout ImageNet weights (with classifier) for ``arch``."""
    widths, depths, num_attention = ARCHS[arch]
    gen = torch.Generator().manual_seed(seed)
    state: Dict[str, torch.Tensor] = {}
    _conv(state, 'patch_embed.0', widths[0] // 2, 3, 3, gen)
    _bn(state, 'patch_embed.1', widths[0] // 2, gen)
    _conv(state, 'patch_embed.3', widths[0], widths[0] // 2, 3, gen)
    _bn(state, 'patch_embed.4', widths[0], gen)
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        if stage > 0:
            _conv(state, f'network.{2 * stage - 1}.proj', width, widths[stage - 1], 3, gen)
            _bn(state, f'network.{2 * stage - 1}.norm', width, gen)
        n_attn = num_attention if stage == 3 else 0
        for ours, j in enumerate(authors_block_indices(stage, depth, n_attn)):
            p = f'network.{2 * stage}.{j}'
            state[f'{p}.layer_scale_1'] = _rand(gen, width, scale=0.5)
            state[f'{p}.layer_scale_2'] = _rand(gen, width, scale=0.5)
            if ours >= depth - n_attn:
                for norm in ('norm1', 'norm2'):
                    state[f'{p}.{norm}.weight'] = 1 + _rand(gen, width)
                    state[f'{p}.{norm}.bias'] = _rand(gen, width)
                _linear(state, f'{p}.token_mixer.qkv', 8 * (32 + 32 + 128), width, gen)
                _linear(state, f'{p}.token_mixer.proj', width, 8 * 128, gen)
                state[f'{p}.token_mixer.attention_biases'] = _rand(gen, 8, bias_grid**2, scale=1.0)
                state[f'{p}.token_mixer.attention_bias_idxs'] = bias_index(bias_grid)
                _linear(state, f'{p}.mlp.fc1', 4 * width, width, gen)
                _linear(state, f'{p}.mlp.fc2', width, 4 * width, gen)
            else:
                _conv(state, f'{p}.mlp.fc1', 4 * width, width, 1, gen)
                _bn(state, f'{p}.mlp.norm1', 4 * width, gen)
                _conv(state, f'{p}.mlp.fc2', width, 4 * width, 1, gen)
                _bn(state, f'{p}.mlp.norm2', width, gen)
    state['norm.weight'] = torch.ones(widths[3])
    state['norm.bias'] = torch.zeros(widths[3])
    _linear(state, 'head', 10, widths[3], gen)
    _linear(state, 'dist_head', 10, widths[3], gen)
    return state


def authors_to_timm_v1(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """timm's names for authors' V1 keys (timm keeps the block index, Flat included)."""
    stem = {'0': 'conv1', '1': 'norm1', '3': 'conv2', '4': 'norm2'}
    out = {}
    for key, value in state.items():
        key = re.sub(r'^patch_embed\.(\d)', lambda m: f'stem.{stem[m[1]]}', key)
        key = re.sub(
            r'^network\.([135])\.proj',
            lambda m: f'stages.{(int(m[1]) + 1) // 2}.downsample.conv',
            key,
        )
        key = re.sub(
            r'^network\.([135])\.norm',
            lambda m: f'stages.{(int(m[1]) + 1) // 2}.downsample.norm',
            key,
        )
        key = re.sub(
            r'^network\.([0246])\.(\d+)', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}', key
        )
        key = re.sub(r'layer_scale_([12])', r'ls\1.gamma', key)
        key = key.replace('dist_head', 'head_dist')
        out[key] = value
    return out


def authors_to_mmpretrain_v1(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """mmpretrain's classifier keys: downsampler is block 0 of stages 1-3, blocks shift by 1."""
    stem = {'0': '0.conv', '1': '0.bn', '3': '1.conv', '4': '1.bn'}
    out = {}
    for key, value in state.items():
        if key.startswith(('head.', 'dist_head.')):
            out[f'head.{key}'] = value
            continue
        # one structural rename per key: the results must not be renamed again
        rules = [
            (r'^patch_embed\.(\d)', lambda m: f'patch_embed.{stem[m[1]]}'),
            (r'^network\.([135])\.proj', lambda m: f'network.{(int(m[1]) + 1) // 2}.0.conv'),
            (r'^network\.([135])\.norm', lambda m: f'network.{(int(m[1]) + 1) // 2}.0.bn'),
            (
                r'^network\.([0246])\.(\d+)',
                lambda m: f'network.{int(m[1]) // 2}.{int(m[2]) + (1 if m[1] != "0" else 0)}',
            ),
        ]
        for pattern, repl in rules:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        key = re.sub(r'layer_scale_([12])', r'ls\1.weight', key)
        key = re.sub(r'^norm\.', 'norm3.', key)
        out[f'backbone.{key}'] = value
    return out


def _bn_apply(x: torch.Tensor, s: Dict, name: str) -> torch.Tensor:
    return F.batch_norm(
        x, s[f'{name}.running_mean'], s[f'{name}.running_var'], s[f'{name}.weight'],
        s[f'{name}.bias'], training=False, eps=1e-5,
    )  # fmt: skip


def _conv_apply(x: torch.Tensor, s: Dict, name: str, stride: int = 1) -> torch.Tensor:
    weight = s[f'{name}.weight']
    return F.conv2d(x, weight, s[f'{name}.bias'], stride=stride, padding=weight.shape[-1] // 2)


def reference_v1_features(
    state: Dict[str, torch.Tensor],
    arch: str,
    x: torch.Tensor,
    out_norm: bool = False,
    table_key: str = 'attention_biases',
    bias_fn=None,
) -> Sequence[torch.Tensor]:
    """Stage outputs (NCHW) of authors-layout weights, from the paper's equations.

    ``bias_fn(table, num_queries, num_keys)`` gives the bias; by default the
    table is gathered for the 7 x 7 ImageNet grid.
    """
    widths, depths, num_attention = ARCHS[arch]
    s = state
    x = F.relu(_bn_apply(_conv_apply(x, s, 'patch_embed.0', 2), s, 'patch_embed.1'))
    x = F.relu(_bn_apply(_conv_apply(x, s, 'patch_embed.3', 2), s, 'patch_embed.4'))
    outs = []
    for stage, depth in enumerate(depths):
        if stage > 0:
            x = _bn_apply(
                _conv_apply(x, s, f'network.{2 * stage - 1}.proj', 2),
                s,
                f'network.{2 * stage - 1}.norm',
            )
        n_attn = num_attention if stage == 3 else 0
        for ours, j in enumerate(authors_block_indices(stage, depth, n_attn)):
            p = f'network.{2 * stage}.{j}'
            ls1, ls2 = s[f'{p}.layer_scale_1'], s[f'{p}.layer_scale_2']
            if ours < depth - n_attn:
                pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
                x = x + ls1.view(1, -1, 1, 1) * (pooled - x)
                h = F.gelu(_bn_apply(_conv_apply(x, s, f'{p}.mlp.fc1'), s, f'{p}.mlp.norm1'))
                h = _bn_apply(_conv_apply(h, s, f'{p}.mlp.fc2'), s, f'{p}.mlp.norm2')
                x = x + ls2.view(1, -1, 1, 1) * h
                continue
            b, c, hh, ww = x.shape
            t = x.flatten(2).transpose(1, 2)
            y = F.layer_norm(t, (c,), s[f'{p}.norm1.weight'], s[f'{p}.norm1.bias'])
            qkv = F.linear(y, s[f'{p}.token_mixer.qkv.weight'], s[f'{p}.token_mixer.qkv.bias'])
            q, k, v = qkv.view(b, -1, 8, 192).permute(0, 2, 1, 3).split([32, 32, 128], dim=-1)
            table = s[f'{p}.token_mixer.{table_key}']
            bias = bias_fn(table, hh * ww, hh * ww) if bias_fn else table[:, bias_index(hh)]
            logits = q @ k.transpose(-2, -1) * 32**-0.5 + bias
            y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, 1024)
            y = F.linear(y, s[f'{p}.token_mixer.proj.weight'], s[f'{p}.token_mixer.proj.bias'])
            t = t + ls1 * y
            y = F.layer_norm(t, (c,), s[f'{p}.norm2.weight'], s[f'{p}.norm2.bias'])
            y = F.linear(F.gelu(F.linear(y, s[f'{p}.mlp.fc1.weight'], s[f'{p}.mlp.fc1.bias'])),
                         s[f'{p}.mlp.fc2.weight'], s[f'{p}.mlp.fc2.bias'])  # fmt: skip
            t = t + ls2 * y
            x = t.transpose(1, 2).reshape(b, c, hh, ww)
        if out_norm:  # the norm is on the output only, not on the path to the next stage
            outs.append(
                F.group_norm(x, 1, s[f'norm{2 * stage}.weight'], s[f'norm{2 * stage}.bias'])
            )
        else:
            outs.append(x)
    return outs


def official_bias_fn(grid: int, query_stride: int = 1):
    """The authors' downstream bias: dense matrix of the ``grid`` table, bicubic to (Nq, Nk)."""

    def bias(table: torch.Tensor, num_queries: int, num_keys: int) -> torch.Tensor:
        q_side = -(-grid // query_stride)
        seen: Dict = {}
        index = torch.tensor(
            [
                [
                    seen.setdefault(
                        (abs(query_stride * qy - ky), abs(query_stride * qx - kx)), len(seen)
                    )
                    for ky in range(grid)
                    for kx in range(grid)
                ]
                for qy in range(q_side)
                for qx in range(q_side)
            ]
        )
        dense = table[:, index][None]
        return F.interpolate(
            dense, size=(num_queries, num_keys), mode='bicubic', align_corners=False
        )[0]

    return bias


def to_downstream_v1(
    state: Dict[str, torch.Tensor], grid: int, seed: int = 1
) -> Dict[str, torch.Tensor]:
    """An authors' mmdet-2.x file: backbone. prefix, _seg tables, output norms, a neck."""
    gen = torch.Generator().manual_seed(seed)
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(('head.', 'dist_head.', 'norm.')):
            continue
        if key.endswith('attention_biases'):
            prefix = key[: -len('attention_biases')]
            out[f'backbone.{key}'] = torch.zeros(8, 49)  # unused placeholder buffers
            out[f'backbone.{prefix}attention_bias_idxs'] = torch.ones(49, 49, dtype=torch.long)
            out[f'backbone.{prefix}attention_biases_seg'] = _rand(gen, 8, grid * grid, scale=1.0)
            out[f'backbone.{prefix}attention_bias_idxs_seg'] = bias_index(grid)
        elif not key.endswith('attention_bias_idxs'):
            out[f'backbone.{key}'] = value
    widths = {
        int(k.split('.')[1]): v.shape[0]
        for k, v in state.items()
        if re.match(r'network\.[135]\.norm\.weight', k)
    }
    widths[-1] = state['patch_embed.4.weight'].shape[0]
    for index, stage in enumerate((-1, 1, 3, 5)):
        out[f'backbone.norm{2 * index}.weight'] = 1 + _rand(gen, widths[stage])
        out[f'backbone.norm{2 * index}.bias'] = _rand(gen, widths[stage])
    out['neck.lateral_convs.0.conv.weight'] = _rand(gen, 4, widths[-1], 1, 1)
    return out
