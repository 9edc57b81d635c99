"""The constant methods an ExecuTorch program of mmeffformer carries beside its networks.

ExecuTorch programs have no metadata field, so what a runtime must know about the file is
stored as methods that take nothing and return a constant: JSON as UTF-8 bytes (a
``uint8`` tensor) or a list of ints.
"""

from __future__ import annotations

import json

import torch

#: the model's description (UTF-8 JSON), what ``read_metadata`` gives for ONNX files
METADATA_METHOD = 'mmeffformer_metadata'
#: ``[height, width]`` of the largest input the program's memory is planned for
BOUND_METHOD = 'max_shape'
#: a detector's config (UTF-8 JSON: default_scope, model)
MODEL_CFG_METHOD = 'mmdet_model'
#: a segmentor program's metadata entry saying that ``forward`` gives the decode head's
#: logits, which the runtime resizes to the input (bilinear, with the metadata's
#: ``align_corners``): ExecuTorch's own resize of many-class logits to a free output size
#: runs unvectorised on one thread, several times slower than the network before it
HEAD_LOGITS = ('logits', 'decode head')


def json_constant(value: dict) -> torch.Tensor:
    """``value`` as the UTF-8 bytes of its JSON, the return value of a constant method."""
    text = json.dumps(value, sort_keys=True).encode('utf-8')
    return torch.tensor(list(text), dtype=torch.uint8)


def read_json_constant(program, method: str) -> dict:
    """The JSON a loaded program's constant ``method`` returns (:func:`json_constant`)."""
    (data,) = program.load_method(method).execute([])
    return json.loads(bytes(data.tolist()).decode('utf-8'))
