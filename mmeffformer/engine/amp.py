"""``--amp`` as config changes: the optimizer wrapper that trains in mixed precision.

CUDA: mmengine's ``AmpOptimWrapper`` (float16 with dynamic loss scaling, or
bfloat16); CPU: :class:`~mmeffformer.engine.optimizers.CPUAutocastOptimWrapper`
(bfloat16 only). Evaluation under ``--amp`` uses the loops of
:mod:`mmeffformer.engine.runner.autocast_loops`.
"""

from __future__ import annotations


def amp_optim_wrapper(optim_wrapper: dict, device: str, dtype: str) -> dict:
    """``optim_wrapper`` config turned into mixed precision for ``device`` ('cpu' / 'cuda')."""
    check_amp(device, dtype)
    wrapper = dict(optim_wrapper)
    if device == 'cuda':
        wrapper.update(type='AmpOptimWrapper', dtype=dtype)
        if dtype == 'float16':
            wrapper['loss_scale'] = 'dynamic'
        return wrapper
    wrapper.update(type='mmeffformer.CPUAutocastOptimWrapper', dtype='bfloat16')
    return wrapper


def check_amp(device: str, dtype: str) -> None:
    """Raise a ValueError naming an unsupported ``--amp`` device or dtype."""
    if dtype not in ('bfloat16', 'float16'):
        raise ValueError(f'--amp-dtype must be bfloat16 or float16, got {dtype!r}')
    if device not in ('cpu', 'cuda'):
        raise ValueError(f'--amp supports cpu and cuda, not {device!r}')
    if device == 'cpu' and dtype != 'bfloat16':
        raise ValueError(
            f'--amp-dtype {dtype} is not supported on CPU (torch CPU autocast is bfloat16 '
            'only); use --amp-dtype bfloat16'
        )
