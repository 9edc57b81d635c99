"""EfficientFormerV2 written independently of mmeffformer, for fidelity tests.

Random weights under the authors' ImageNet keys, their timm renaming, and a
functional forward from the paper's equations (224 px: 7 x 7 attention grids,
14 x 14 keys for the downsampling attention).
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from .v1_reference import _bn, _bn_apply, _conv, _rand, bias_index

ARCHS = {
    's0': (
        (32, 48, 96, 176),
        (2, 2, 6, 4),
        2,
        ([4] * 2, [4] * 2, [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]),
    ),
    's1': (
        (32, 48, 120, 224),
        (3, 3, 9, 6),
        2,
        ([4] * 3, [4] * 3, [4, 4, 3, 3, 3, 3, 4, 4, 4], [4, 4, 3, 3, 4, 4]),
    ),
    'tiny': ((8, 16, 24, 32), (1, 1, 2, 2), 1, ([2], [2], [2, 3], [3, 2])),
}


def arch_dict(name: str) -> dict:
    widths, depths, num_attention, ratios = ARCHS[name]
    return dict(widths=widths, depths=depths, num_attention=num_attention, mlp_ratios=ratios)


def downsample_bias_index(query_side: int, key_side: int) -> torch.Tensor:
    """Authors' numbering for queries on the half grid: offset (|2qy - ky|, |2qx - kx|)."""
    seen: Dict = {}
    rows = []
    for qy in range(query_side):
        for qx in range(query_side):
            rows.append(
                [
                    seen.setdefault((abs(2 * qy - ky), abs(2 * qx - kx)), len(seen))
                    for ky in range(key_side)
                    for kx in range(key_side)
                ]
            )
    return torch.tensor(rows)


def _pair(state: Dict, name: str, out_ch: int, in_ch: int, k: int, gen, groups: int = 1) -> None:
    """Authors' Sequential(conv, BN) at ``name.0`` / ``name.1``."""
    _conv(state, f'{name}.0', out_ch, in_ch // groups, k, gen)
    _bn(state, f'{name}.1', out_ch, gen)


def authors_v2_state(arch: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    widths, depths, num_attention, ratios = ARCHS[arch]
    gen = torch.Generator().manual_seed(seed)
    s: Dict[str, torch.Tensor] = {}
    _conv(s, 'patch_embed.0', widths[0] // 2, 3, 3, gen)
    _bn(s, 'patch_embed.1', widths[0] // 2, gen)
    _conv(s, 'patch_embed.3', widths[0], widths[0] // 2, 3, gen)
    _bn(s, 'patch_embed.4', widths[0], gen)
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        prev = widths[stage - 1]
        if stage in (1, 2):
            _conv(s, f'network.{2 * stage - 1}.proj', width, prev, 3, gen)
            _bn(s, f'network.{2 * stage - 1}.norm', width, gen)
        if stage == 3:
            _conv(s, 'network.5.conv', width, prev, 3, gen)
            _bn(s, 'network.5.bn', width, gen)
            a = 'network.5.attn'
            _conv(s, f'{a}.q.local.0', prev, 1, 3, gen)
            _pair(s, f'{a}.q.proj', 128, prev, 1, gen)
            _pair(s, f'{a}.k', 128, prev, 1, gen)
            _pair(s, f'{a}.v', 512, prev, 1, gen)
            _pair(s, f'{a}.v_local', 512, 512, 3, gen, groups=512)
            _conv(s, f'{a}.proj.1', width, 512, 1, gen)
            _bn(s, f'{a}.proj.2', width, gen)
            s[f'{a}.attention_biases'] = _rand(gen, 8, 196, scale=1.0)
            s[f'{a}.attention_bias_idxs'] = downsample_bias_index(7, 14)
        for j in range(depth):
            p = f'network.{2 * stage}.{j}'
            hidden = width * ratios[stage][j]
            _conv(s, f'{p}.mlp.fc1', hidden, width, 1, gen)
            _bn(s, f'{p}.mlp.norm1', hidden, gen)
            _conv(s, f'{p}.mlp.mid', hidden, 1, 3, gen)
            _bn(s, f'{p}.mlp.mid_norm', hidden, gen)
            _conv(s, f'{p}.mlp.fc2', width, hidden, 1, gen)
            _bn(s, f'{p}.mlp.norm2', width, gen)
            s[f'{p}.layer_scale_2'] = _rand(gen, width, 1, 1, scale=0.5)
            if stage >= 2 and j >= depth - num_attention:
                s[f'{p}.layer_scale_1'] = _rand(gen, width, 1, 1, scale=0.5)
                t = f'{p}.token_mixer'
                if stage == 2:
                    _pair(s, f'{t}.stride_conv', width, width, 3, gen, groups=width)
                _pair(s, f'{t}.q', 256, width, 1, gen)
                _pair(s, f'{t}.k', 256, width, 1, gen)
                _pair(s, f'{t}.v', 1024, width, 1, gen)
                _pair(s, f'{t}.v_local', 1024, 1024, 3, gen, groups=1024)
                _conv(s, f'{t}.talking_head1', 8, 8, 1, gen)
                _conv(s, f'{t}.talking_head2', 8, 8, 1, gen)
                _conv(s, f'{t}.proj.1', width, 1024, 1, gen)
                _bn(s, f'{t}.proj.2', width, gen)
                s[f'{t}.attention_biases'] = _rand(gen, 8, 49, scale=1.0)
                s[f'{t}.attention_bias_idxs'] = bias_index(7)
    _bn(s, 'norm', widths[3], gen)
    _conv(s, 'head', 10, widths[3], 1, gen)
    s['head.weight'] = s['head.weight'].flatten(1)
    s['dist_head.weight'], s['dist_head.bias'] = s['head.weight'].clone(), s['head.bias'].clone()
    return s


def authors_to_timm_v2(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """timm's names for authors' V2 keys (conv+BN pairs as .conv/.bn, ls as gamma (C,))."""
    pair = {'0': 'conv', '1': 'bn'}
    rules = [
        (r'^patch_embed\.([0134])\.', lambda m: {'0': 'stem.conv1.conv.', '1': 'stem.conv1.bn.', '3': 'stem.conv2.conv.', '4': 'stem.conv2.bn.'}[m[1]]),
        (r'^network\.([13])\.(proj|norm)\.', lambda m: f'stages.{(int(m[1]) + 1) // 2}.downsample.conv.{"conv" if m[2] == "proj" else "bn"}.'),
        (r'^network\.5\.(conv|bn)\.', lambda m: f'stages.3.downsample.conv.{m[1]}.'),
        (r'^network\.5\.attn\.q\.local\.0\.', lambda m: 'stages.3.downsample.attn.q.local.'),
        (r'^network\.5\.attn\.q\.proj\.([01])\.', lambda m: f'stages.3.downsample.attn.q.proj.{pair[m[1]]}.'),
        (r'^network\.5\.attn\.(k|v|v_local)\.([01])\.', lambda m: f'stages.3.downsample.attn.{m[1]}.{pair[m[2]]}.'),
        (r'^network\.5\.attn\.proj\.([12])\.', lambda m: f'stages.3.downsample.attn.proj.{"conv" if m[1] == "1" else "bn"}.'),
        (r'^network\.5\.attn\.', lambda m: 'stages.3.downsample.attn.'),
        (r'^network\.([0246])\.(\d+)\.mlp\.(fc1|mid|fc2)\.', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.mlp.{m[3]}.conv.'),
        (r'^network\.([0246])\.(\d+)\.mlp\.(norm1|mid_norm|norm2)\.', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.mlp.{ {"norm1": "fc1", "mid_norm": "mid", "norm2": "fc2"}[m[3]] }.bn.'),
        (r'^network\.([0246])\.(\d+)\.layer_scale_([12])', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.ls{m[3]}.gamma'),
        (r'^network\.([0246])\.(\d+)\.token_mixer\.(q|k|v|v_local|stride_conv)\.([01])\.', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.token_mixer.{m[3]}.{pair[m[4]]}.'),
        (r'^network\.([0246])\.(\d+)\.token_mixer\.proj\.([12])\.', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.token_mixer.proj.{"conv" if m[3] == "1" else "bn"}.'),
        (r'^network\.([0246])\.(\d+)\.', lambda m: f'stages.{int(m[1]) // 2}.blocks.{m[2]}.'),
        (r'^dist_head\.', lambda m: 'head_dist.'),
    ]  # fmt: skip
    out = {}
    for key, value in state.items():
        if key.endswith('attention_bias_idxs'):
            continue  # timm does not save V2 indices
        for pattern, repl in rules:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value.reshape(-1) if key.endswith('.gamma') else value
    return out


def _seq(x: torch.Tensor, s: Dict, name: str, stride: int = 1, groups: int = 1) -> torch.Tensor:
    """Authors' Sequential(conv, BN) at ``name.0`` / ``name.1``."""
    w = s[f'{name}.0.weight']
    x = F.conv2d(x, w, s[f'{name}.0.bias'], stride, w.shape[-1] // 2, groups=groups)
    return _bn_apply(x, s, f'{name}.1')


def _conv_bn(x, s, conv, bn, stride=1, groups=1):
    w = s[f'{conv}.weight']
    x = F.conv2d(x, w, s[f'{conv}.bias'], stride, w.shape[-1] // 2, groups=groups)
    return _bn_apply(x, s, bn)


def _attention4d(
    x: torch.Tensor, s: Dict, t: str, strided: bool, bias_fn, key: str
) -> torch.Tensor:
    size = x.shape[-2:]
    if strided:
        x = _seq(x, s, f'{t}.stride_conv', 2, groups=x.shape[1])
    b, _, h, w = x.shape
    n = h * w
    q = _seq(x, s, f'{t}.q').view(b, 8, 32, n).transpose(-2, -1)
    k = _seq(x, s, f'{t}.k').view(b, 8, 32, n)
    v = _seq(x, s, f'{t}.v')
    v_local = _seq(v, s, f'{t}.v_local', groups=1024)
    v = v.view(b, 8, 128, n).transpose(-2, -1)
    table = s[f'{t}.{key}']
    a = q @ k * 32**-0.5 + (bias_fn(table, n, n) if bias_fn else table[:, bias_index(7)])
    a = F.conv2d(a, s[f'{t}.talking_head1.weight'], s[f'{t}.talking_head1.bias']).softmax(-1)
    a = F.conv2d(a, s[f'{t}.talking_head2.weight'], s[f'{t}.talking_head2.bias'])
    out = (a @ v).transpose(-2, -1).reshape(b, 1024, h, w) + v_local
    if strided:
        out = F.interpolate(out, scale_factor=2, mode='bilinear', align_corners=False)
        assert out.shape[-2:] == size  # the authors' code needs sizes divisible by 32
    return _conv_bn(F.gelu(out), s, f'{t}.proj.1', f'{t}.proj.2')


def _downsample_attention(x: torch.Tensor, s: Dict, a: str, bias_fn, key: str) -> torch.Tensor:
    b, c, h, w = x.shape
    local = F.conv2d(x, s[f'{a}.q.local.0.weight'], s[f'{a}.q.local.0.bias'], 2, 1, groups=c)
    q = _seq(local + F.avg_pool2d(x, 1, 2), s, f'{a}.q.proj')
    hq, wq = q.shape[-2:]
    q = q.view(b, 8, 16, hq * wq).transpose(-2, -1)
    k = _seq(x, s, f'{a}.k').view(b, 8, 16, h * w)
    v = _seq(x, s, f'{a}.v')
    v_local = _seq(v, s, f'{a}.v_local', 2, groups=512)
    v = v.view(b, 8, 64, h * w).transpose(-2, -1)
    table = s[f'{a}.{key}']
    bias = bias_fn(table, hq * wq, h * w) if bias_fn else table[:, downsample_bias_index(hq, h)]
    attn = q @ k * 16**-0.5 + bias
    out = (attn.softmax(-1) @ v).transpose(-2, -1).reshape(b, 512, hq, wq) + v_local
    return _conv_bn(F.gelu(out), s, f'{a}.proj.1', f'{a}.proj.2')


def reference_v2_features(
    state: Dict,
    arch: str,
    x: torch.Tensor,
    bias_fns=None,
    table_key: str = 'attention_biases',
) -> Sequence[torch.Tensor]:
    """Stage outputs of authors-layout V2 weights.

    Without ``bias_fns`` the ImageNet tables are used at 224 x 224; otherwise
    ``bias_fns = (attention, downsampling attention)`` give the biases.
    """
    attn_fn, down_fn = bias_fns or (None, None)
    widths, depths, num_attention, _ = ARCHS[arch]
    s = state
    x = F.gelu(_conv_bn(x, s, 'patch_embed.0', 'patch_embed.1', 2))
    x = F.gelu(_conv_bn(x, s, 'patch_embed.3', 'patch_embed.4', 2))
    outs: List[torch.Tensor] = []
    for stage, depth in enumerate(depths):
        if stage in (1, 2):
            x = _conv_bn(x, s, f'network.{2 * stage - 1}.proj', f'network.{2 * stage - 1}.norm', 2)
        if stage == 3:
            x = _conv_bn(x, s, 'network.5.conv', 'network.5.bn', 2) + _downsample_attention(
                x, s, 'network.5.attn', down_fn, table_key
            )
        for j in range(depth):
            p = f'network.{2 * stage}.{j}'
            if stage >= 2 and j >= depth - num_attention:
                x = x + s[f'{p}.layer_scale_1'] * _attention4d(
                    x, s, f'{p}.token_mixer', stage == 2, attn_fn, table_key
                )
            h = F.gelu(_conv_bn(x, s, f'{p}.mlp.fc1', f'{p}.mlp.norm1'))
            h = F.gelu(_conv_bn(h, s, f'{p}.mlp.mid', f'{p}.mlp.mid_norm', groups=h.shape[1]))
            h = _conv_bn(h, s, f'{p}.mlp.fc2', f'{p}.mlp.norm2')
            x = x + s[f'{p}.layer_scale_2'] * h
        outs.append(x)
    return outs


def to_downstream_v2(
    state: Dict[str, torch.Tensor], grid: int, seed: int = 1
) -> Dict[str, torch.Tensor]:
    """An authors' mmseg-0.x file: backbone. prefix, _seg tables for ``grid`` (stride 32)."""
    gen = torch.Generator().manual_seed(seed)
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(('head.', 'dist_head.', 'norm.')):
            continue
        if key.endswith('attention_biases'):
            prefix = key[: -len('attention_biases')]
            down = key.startswith('network.5.')
            keys = 2 * grid if down else grid
            out[f'backbone.{key}'] = torch.zeros_like(value)
            out[f'backbone.{prefix}attention_bias_idxs'] = torch.ones(
                49, value.shape[1], dtype=torch.long
            )
            out[f'backbone.{prefix}attention_biases_seg'] = _rand(gen, 8, keys * keys, scale=1.0)
            out[f'backbone.{prefix}attention_bias_idxs_seg'] = (
                downsample_bias_index(grid, 2 * grid) if down else bias_index(grid)
            )
        elif not key.endswith('attention_bias_idxs'):
            out[f'backbone.{key}'] = value
    out['decode_head.conv_seg.weight'] = _rand(gen, 5, 16, 1, 1)
    return out
