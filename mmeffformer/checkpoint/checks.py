"""Fail early, naming the problem, when a config's pretrained file is missing or a checkpoint
does not fit the model."""

from __future__ import annotations

import os.path as osp

from mmengine.config import Config

from .download import download_checkpoint


def check_pretrained_files(cfg: Config) -> None:
    """Raise ``FileNotFoundError`` when the backbone's pretrained file is missing; fetch
    a URL into the checkpoint cache now, so an offline run fails before training starts."""
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    path = init_cfg.get('checkpoint') if init_cfg.get('type') == 'Pretrained' else None
    if path and path.startswith(('http://', 'https://')):
        download_checkpoint(path)  # once; every later load is a cache hit
    elif path and '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f"Pretrained backbone weights {path!r} not found: put the authors' ImageNet file "
            f'there, or train from scratch with --cfg-options model.backbone.init_cfg=None'
        )


def check_checkpoint_matches(model, path: str, min_fraction: float = 0.9) -> None:
    """Refuse to evaluate a checkpoint that does not fit the model.

    mmengine loads ``load_from`` non-strictly and only warns, so a checkpoint of
    another arch would otherwise be evaluated with mostly random weights.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    state = _load_checkpoint(path, map_location='cpu')
    state = state.get('state_dict', state)
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    matched = sum(1 for k, v in state.items() if k in own and own[k].shape == v.shape)
    if mismatched or matched < min_fraction * len(own):
        raise ValueError(
            f'Checkpoint {path!r} does not fit the model: {matched} of {len(own)} tensors '
            f'match, {len(mismatched)} have other shapes (e.g. {mismatched[:3]}); '
            f'is it for another arch or config?'
        )
