"""Checkpoint layouts, conversion to our keys, pretrained loading, and the checks the tools
run on checkpoints."""

from .checks import check_checkpoint_matches, check_pretrained_files
from .convert import convert_checkpoint, save_converted
from .download import CheckpointDownloadError, cache_dir, cached_path, download_checkpoint
from .layouts import detect_layout, split_prefix, unwrap_state_dict
from .loading import (
    LoadReport,
    backbone_state_from_checkpoint,
    load_backbone_state,
    load_pretrained_backbone,
)
from .reading import UnreadableCheckpointError, read_checkpoint
from .rename import to_ours

__all__ = [
    'CheckpointDownloadError',
    'LoadReport',
    'UnreadableCheckpointError',
    'backbone_state_from_checkpoint',
    'cache_dir',
    'check_checkpoint_matches',
    'check_pretrained_files',
    'cached_path',
    'convert_checkpoint',
    'detect_layout',
    'download_checkpoint',
    'load_backbone_state',
    'load_pretrained_backbone',
    'read_checkpoint',
    'save_converted',
    'split_prefix',
    'to_ours',
    'unwrap_state_dict',
]
