"""Load pretrained weights of any supported layout into a backbone, with a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .layouts import StateDict
from .reading import read_checkpoint
from .rename import checkpoint_to_ours

#: Fewer loaded tensors than this share of the backbone's means a wrong file.
MIN_LOADED_FRACTION = 0.9


@dataclass
class LoadReport:
    """What a pretrained load did, tensor by tensor."""

    layout: str
    family: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    #: output norms a classification file cannot have (they start fresh)
    new_output_norms: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: Dict[str, str] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)
    total: int = 0

    @property
    def fraction(self) -> float:
        return len(self.loaded) / max(self.total, 1)

    def summary(self) -> str:
        lines = [
            f'layout {self.layout} ({self.family}): loaded {len(self.loaded)}/{self.total} '
            f'backbone tensors ({self.fraction:.1%})',
            f'missing ({len(self.missing)}): {self.missing[:20]}',
            f'unexpected ({len(self.unexpected)}): {self.unexpected[:20]}',
            f'shape mismatch ({len(self.mismatched)}): {dict(list(self.mismatched.items())[:10])}',
            f'dropped on purpose ({len(self.dropped)}): {sorted(set(self.dropped.values()))}',
        ]
        if self.new_output_norms:
            lines.insert(
                2,
                f'new output norms, which a classification file does not have '
                f'({len(self.new_output_norms)}): {self.new_output_norms[:8]}',
            )
        return '\n'.join(lines)


def backbone_state_from_checkpoint(
    checkpoint: dict, prefix: Optional[str] = None
) -> tuple[StateDict, str, str, Dict[str, str]]:
    """Backbone tensors of a checkpoint in our layout.

    Whole detector / segmentor / classifier files are recognised by their
    ``backbone.`` keys; ``prefix`` overrides that prefix.

    Returns:
        ``(state, layout, family, dropped)``.
    """
    result = checkpoint_to_ours(checkpoint, prefix or 'backbone.')
    dropped = dict(result.dropped)
    dropped.update({key: 'outside the backbone' for key in result.others})
    return result.backbone, result.layout, result.family, dropped


def load_backbone_state(
    model: nn.Module, state: StateDict, layout: str, family: str, dropped: Dict[str, str]
) -> LoadReport:
    """Copy matching tensors into ``model``; raise if too few matched."""
    own = model.state_dict()
    report = LoadReport(layout=layout, family=family, dropped=dropped, total=len(own))
    loadable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched[key] = (
                f'{tuple(value.shape)} in file, {tuple(own[key].shape)} in model'
            )
        else:
            loadable[key] = value
    report.loaded = sorted(loadable)
    missing = sorted(set(own) - set(loadable) - set(report.mismatched))
    if not any(key.startswith('out_norms.') for key in state):
        # a classification file: the downstream output norms are new layers, not a loss
        report.new_output_norms = [key for key in missing if key.startswith('out_norms.')]
    report.missing = [key for key in missing if key not in report.new_output_norms]
    if report.fraction < MIN_LOADED_FRACTION:
        raise ValueError(
            f'Only {len(report.loaded)} of {report.total} backbone tensors '
            f'({report.fraction:.1%}) match this checkpoint; is it for another arch or '
            f'model?\n{report.summary()}'
        )
    with torch.no_grad():
        model.load_state_dict(loadable, strict=False)
    return report


def load_pretrained_backbone(
    model: nn.Module,
    checkpoint_path: str,
    prefix: Optional[str] = None,
    family: Optional[str] = None,
) -> LoadReport:
    """Load ``checkpoint_path`` (any supported layout) into a backbone and log a report.

    Raises:
        ValueError: for a file of the other EfficientFormer generation, or when
            fewer than 90% of the backbone's tensors could be loaded.
    """
    if '://' in str(checkpoint_path):  # URLs and mmengine's other schemes
        checkpoint = CheckpointLoader.load_checkpoint(checkpoint_path, map_location='cpu')
    else:  # .pth or .safetensors, a broken file named, on every supported stack
        checkpoint = read_checkpoint(checkpoint_path, map_location='cpu')
    state, layout, found_family, dropped = backbone_state_from_checkpoint(checkpoint, prefix)
    if family and found_family != family:
        raise ValueError(
            f'{checkpoint_path} holds EfficientFormer{found_family.upper()} weights, '
            f'but the model is EfficientFormer{family.upper()}'
        )
    report = load_backbone_state(model, state, layout, found_family, dropped)
    print_log(f'Loaded {checkpoint_path}: {report.summary()}', logger='current')
    if report.mismatched and any('bias.table' in key for key in report.mismatched):
        print_log(
            'Attention bias tables of another grid were not loaded: official-mode tables '
            "(attention_biases_seg) need attn_bias='official' with the matching "
            'attn_bias_size; ImageNet tables need the relative mode.',
            logger='current',
        )
    return report
