"""What the installed torch can do, and one spelling of the calls whose API moved.

The supported stacks run torch 2.1.2 (the classic OpenMMLab 2.0 stack) to 2.13.0. A few
calls the models make were added or renamed in between; the wrappers here give the same
results on every supported version. Features that an old torch cannot provide at all
(compiled deploy, say) call :func:`require_torch`, which names the feature, the torch
found and the torch needed.
"""

from __future__ import annotations

import functools

import torch

from mmeffformer.supported_versions import version_tuple

TORCH_VERSION = version_tuple(torch.__version__)


def torch_at_least(minimum: str) -> bool:
    """True when the installed torch is ``minimum`` or newer."""
    return TORCH_VERSION >= version_tuple(minimum)


class UnsupportedTorchFeatureError(RuntimeError):
    """A feature was asked of a torch version that does not have it."""


def require_torch(feature: str, minimum: str) -> None:
    """Raise :class:`UnsupportedTorchFeatureError` unless torch is ``minimum`` or newer."""
    if not torch_at_least(minimum):
        raise UnsupportedTorchFeatureError(
            f'{feature} needs torch >= {minimum}, but torch {torch.__version__} is installed. '
            f'Run without it, or install a newer torch together with an mmcv built for it '
            f'(docs/getting_started.md lists the supported stacks).'
        )


def is_compiling() -> bool:
    """True while dynamo traces (``torch.compiler.is_compiling`` arrived in torch 2.3)."""
    if hasattr(torch.compiler, 'is_compiling'):
        return torch.compiler.is_compiling()
    return torch._dynamo.is_compiling()


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (the argument arrived in torch 2.4)."""
    if torch_at_least('2.4'):
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    return torch.is_autocast_enabled()


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast computes in on ``device_type`` (one function since torch 2.4)."""
    if torch_at_least('2.4'):
        return torch.get_autocast_dtype(device_type)
    if device_type == 'cpu':
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


def torchscript_exporter() -> dict:
    """The ``torch.onnx.export`` argument that picks the TorchScript-based exporter.

    torch >= 2.5 has a ``dynamo`` argument (and from 2.9 defaults it to True); older torch
    has only the TorchScript exporter, so no argument gives the same export there.
    """
    import inspect

    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        return {'dynamo': False}
    return {}


@functools.lru_cache(maxsize=None)
def has_cpu_float16_convolution() -> bool:
    """Whether this torch convolves float16 tensors on the CPU (torch 2.1 has no kernel:
    ``"slow_conv2d_cpu" not implemented for 'Half'``)."""
    try:
        image = torch.zeros(1, 1, 3, 3, dtype=torch.float16)
        torch.nn.functional.conv2d(image, torch.zeros(1, 1, 1, 1, dtype=torch.float16))
        return True
    except RuntimeError:
        return False


@functools.lru_cache(maxsize=None)
def has_eye(dtype: torch.dtype, device_type: str) -> bool:
    """Whether ``torch.eye`` exists for ``dtype`` on ``device_type`` (torch 2.1 has no bf16
    one on the CPU; resize weights are then computed in float32 and rounded)."""
    try:
        torch.eye(1, dtype=dtype, device=device_type)
        return True
    except RuntimeError:
        return False
