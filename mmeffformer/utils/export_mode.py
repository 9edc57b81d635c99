"""Whether the current call is being traced for export (ONNX, TorchScript)."""

from __future__ import annotations

import torch


def is_exporting() -> bool:
    """True while ``torch.onnx.export``, ``torch.jit.trace`` or ``torch.export`` records
    the model.

    Layers then take the plain PyTorch op (``avg_pool2d``, ``interpolate``) and
    compute sizes from the traced shapes, so one exported file serves every
    input size; the CPU-tuned equivalents bake the traced size into constants.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    # torch.compiler.is_exporting arrived in torch 2.5
    return bool(getattr(torch.compiler, 'is_exporting', lambda: False)())
