"""Read a checkpoint file (PyTorch / mmengine pickle or .safetensors) with clear errors.

torch reports a truncated or foreign file from deep inside its unpickler
(``EOFError: Ran out of input``, ``invalid literal for int() with base 10``);
:func:`read_checkpoint` names the file and what was expected instead, and chains
the original error.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Union

import torch

PathLike = Union[str, 'os.PathLike[str]']

EXPECTED = 'a PyTorch / mmengine checkpoint (torch.save) or a .safetensors file'


class UnreadableCheckpointError(ValueError):
    """A checkpoint file exists but cannot be read as any supported format."""


def is_safetensors(path: PathLike) -> bool:
    """True for a .safetensors file: by name, or by its header (8-byte length, then JSON)."""
    if str(path).endswith('.safetensors'):
        return True
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b'{':
        return False
    (header_length,) = struct.unpack('<Q', head[:8])
    return 2 <= header_length <= os.path.getsize(path) - 8


def read_safetensors(path: PathLike, map_location: Any = 'cpu') -> dict:
    """The flat ``{key: tensor}`` of a .safetensors file, metadata under ``'meta'``."""
    from safetensors import safe_open

    device = map_location if isinstance(map_location, str) else 'cpu'
    with safe_open(str(path), framework='pt', device=device) as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
        metadata = f.metadata()
    return dict(state_dict=state, meta=dict(safetensors=metadata or {}))


def read_checkpoint(path: PathLike, map_location: Any = 'cpu', **torch_load_kwargs: Any) -> Any:
    """Load ``path`` as a torch pickle or a .safetensors file.

    Pickles are loaded with ``weights_only=False`` unless given: checkpoints are
    trusted files (mmengine's hold its config and message hub).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnreadableCheckpointError: the file is empty, truncated or of another format.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    if os.path.getsize(path) == 0:
        raise UnreadableCheckpointError(
            f'{path} is not a readable checkpoint: the file is empty; expected {EXPECTED}'
        )
    try:
        if is_safetensors(path):
            return read_safetensors(path, map_location)
        torch_load_kwargs.setdefault('weights_only', False)
        return torch.load(path, map_location=map_location, **torch_load_kwargs)
    except (OSError, MemoryError):
        raise
    except Exception as error:  # torch and safetensors raise many kinds for a bad file
        raise UnreadableCheckpointError(
            f'{path} is not a readable checkpoint ({type(error).__name__}: {error}); expected '
            f'{EXPECTED}. Is the file truncated (an interrupted download or copy) or of '
            'another kind?'
        ) from error
