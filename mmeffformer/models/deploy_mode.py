"""Deploy mode: an inference-only rewrite of a backbone that gives the eval outputs.

``switch_to_deploy`` is a walk over modules: every module that knows an
inference rewrite of itself has a ``reparameterize()`` method (as RepVGG /
MobileOne-style blocks do), called children first:

- ``ConvNorm``: BatchNorm folded into the convolution;
- V1 ``PoolMixerBlock``: ``x + g * (mean3x3(x) - x)`` becomes one depthwise box
  sum with ``g`` in the kernel and one multiply-add; ``ls2`` folded into ``fc2``;
- V1 ``AttentionBlock`` / V2 ``FFNBlock``: layer scales folded into the layer
  that produces their input; DropPath removed;
- attention biases: frozen, then precomputed for the sizes to serve;
- an mmseg segmentor's ``predict`` post-processing: no resize to a shape the logits
  already have, a faster class argmax (:mod:`mmeffformer.models.segmentors`).

Each rewrite is exact in real arithmetic; float32 results differ from eval by
rounding (tested within 1e-4 relative). With ``dtype=torch.bfloat16`` or
``torch.float16`` the backbones then compute in that dtype and in channels-last
layout around a float32 residual stream (see
:meth:`EfficientFormerBackboneBase.set_compute_precision`).
"""

from __future__ import annotations

import time
import types
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmeffformer.utils.compiling import check_compiler_available

from .segmentors import is_segmentor, use_fast_postprocess

#: the feature named when compiling needs what this torch lacks
COMPILED_DEPLOY = 'compiled deploy (compile=True, --compile)'


def reparameterize_modules(model: nn.Module) -> None:
    """Call ``reparameterize()`` on every module that has one, descendants first
    (a block folds its layer scale into a ConvNorm whose BatchNorm is folded)."""
    for module in reversed(list(model.modules())):  # reversed pre-order: children first
        if hasattr(module, 'reparameterize'):
            module.reparameterize()


def make_room_for_graphs(count: int) -> None:
    """Raise dynamo's ``recompile_limit`` by ``count``: room for this call's graphs.

    Under ``fullgraph=True`` dynamo refuses a shape beyond ``recompile_limit`` (8 by
    default) with ``FailOnRecompileLimitHit``, and the backbones of one class share their
    code (also across models and calls in one process): nine served sizes, or two
    backbones at five sizes, would fail otherwise. The default's 8 stay for later sizes.
    """
    from torch._dynamo import config

    if count:
        print_log(
            f'compiled deploy: torch._dynamo.config.recompile_limit raised from '
            f'{config.recompile_limit} to {config.recompile_limit + count} for {count} '
            'backbone and neck graphs',
            logger='current',
        )
        config.recompile_limit += count


def _module_call(module: nn.Module, *args, **kwargs):
    return module._call_impl(*args, **kwargs)


def compile_frozen(module: nn.Module) -> None:
    """Compile ``module`` (a backbone, a neck) in place: one graph (``fullgraph=True``),
    static shapes, weights frozen into the graph as constants (Inductor's ``freezing``), so
    the BN-folded weights and the attention biases of each served size are folded at
    compile time.

    Like ``nn.Module.compile`` this sets the module's ``_compiled_call_impl``, so callers
    keep calling the same object; unlike it, the weights do get frozen. Dynamo decides
    whether parameters become graph constants while it traces, from the global
    ``torch._inductor.config.freezing`` (``compile``'s ``options`` reach Inductor only),
    and it does not for the frame ``nn.Module.compile`` compiles (torch 2.13): each call
    therefore runs with freezing switched on, through a function of this module, and
    without autograd (also outside inference mode, so a caller's mode is not another graph).
    """
    from torch._inductor import config

    compiled = torch.compile(
        types.MethodType(_module_call, module),
        fullgraph=True,
        dynamic=False,
        options={'freezing': True},
    )

    def call_frozen(*args, **kwargs):
        # inference only, always in one autograd state: dynamo guards on it, so a call with
        # gradients enabled, or one under inference mode (whose thread state hides the
        # inputs' autograd keys), would each be another graph (the first without freezing)
        with torch.inference_mode(False), torch.no_grad(), config.patch(freezing=True):
            return compiled(*args, **kwargs)

    module._compiled_call_impl = call_frozen


def necks_of(model: nn.Module, backbones: Sequence[nn.Module]) -> list:
    """The necks of the detectors / segmentors in ``model`` that hold one of ``backbones``."""
    held = {id(backbone) for backbone in backbones}
    return [
        module.neck
        for module in model.modules()
        if id(getattr(module, 'backbone', None)) in held
        and isinstance(getattr(module, 'neck', None), nn.Module)
    ]


def switch_to_deploy(
    model: nn.Module,
    sizes: Sequence[Tuple[int, int]] = (),
    dtype: Optional[torch.dtype] = None,
    compile: bool = False,
    float32_residual: bool = True,
) -> nn.Module:
    """Rewrite every EfficientFormer backbone inside ``model`` for inference.

    Works on a backbone or on any model holding one (a detector, a segmentor);
    precomputes the attention biases for the image ``sizes`` (H, W) to serve.
    ``dtype`` (``torch.bfloat16`` / ``torch.float16``): the backbones compute in it,
    channels-last, take float32 NCHW images and return features in the input's
    dtype and layout, so necks, heads and mmcv ops are unchanged; under autocast to
    ``dtype`` they return them in ``dtype``, channels-last (no round trip before a neck
    that autocast runs in ``dtype``).
    ``float32_residual`` (reduced ``dtype`` only): the blocks' residual stream stays
    float32 and only the stem, downsamples and branches compute in ``dtype`` (see
    :meth:`EfficientFormerBackboneBase.set_compute_precision`); False rounds the stream
    to ``dtype`` too.
    ``compile``: each backbone is compiled in place (:func:`compile_frozen`; callers
    keep calling the same objects) and compiled for every size in ``sizes`` here, batch
    1, so serving those sizes never recompiles; another size or batch compiles once on
    its first call. ``model.deploy_compile_seconds`` holds the time per size. The neck
    of a detector or segmentor holding such a backbone (mmdet's / mmseg's FPN: its
    convolutions, upsampling and sums) is compiled the same way, on its first call at
    each input size and dtype (autocast on or off: a graph each).
    An mmseg segmentor inside ``model`` also gets :func:`use_fast_postprocess` (same
    predictions and logits).
    Returns ``model``, changed in place and in eval mode; not reversible, and
    not trainable afterwards.

    Each step is a function of its own that can be called alone:
    :func:`reparameterize_modules`, :func:`use_fast_segmentor_postprocess`,
    :func:`set_deploy_precision`, :func:`warm_bias_caches`, :func:`compile_deployed`.
    """
    backbones = backbones_in(model)
    if dtype is not None:
        for backbone in backbones:
            backbone.check_precision(dtype)  # fail before anything is rewritten
    if compile:
        check_compiler_available(COMPILED_DEPLOY)
    model.eval()
    reparameterize_modules(model)
    use_fast_segmentor_postprocess(model)
    if dtype is not None:
        set_deploy_precision(model, dtype, float32_residual)
    warm_bias_caches(model, sizes)
    if compile:
        model.deploy_compile_seconds = compile_deployed(model, sizes)
    return model


def backbones_in(model: nn.Module) -> List[nn.Module]:
    """The EfficientFormer backbones in ``model`` (``model`` itself if it is one)."""
    return [m for m in model.modules() if hasattr(m, 'set_compute_precision')]


def use_fast_segmentor_postprocess(model: nn.Module) -> None:
    """Give every mmseg segmentor in ``model`` :func:`use_fast_postprocess` (same predictions
    and logits)."""
    for module in model.modules():
        if is_segmentor(module):
            use_fast_postprocess(module)


def set_deploy_precision(
    model: nn.Module, dtype: torch.dtype, float32_residual: bool = True
) -> None:
    """Make every backbone in ``model`` compute in ``dtype`` (see :func:`switch_to_deploy`)."""
    backbones = backbones_in(model)
    for backbone in backbones:
        backbone.check_precision(dtype)
    for backbone in backbones:
        backbone.set_compute_precision(dtype, float32_residual)


def warm_bias_caches(model: nn.Module, sizes: Sequence[Tuple[int, int]]) -> None:
    """Call every backbone in ``model`` once at each image size (H, W), batch 1, without
    autograd: fills the attention-bias caches that eager and compiled calls read."""
    with torch.no_grad():
        for backbone in backbones_in(model):
            device = next(backbone.parameters()).device
            for height, width in sizes:
                backbone(torch.zeros(1, 3, height, width, device=device))


def compile_deployed(
    model: nn.Module, sizes: Sequence[Tuple[int, int]] = ()
) -> Dict[Tuple[int, int], float]:
    """Compile every backbone in ``model`` in place (:func:`compile_frozen`) for each size,
    batch 1, and the neck of a detector / segmentor holding one (compiled on its first call
    at each size and autocast state). Returns the compile seconds per size.

    Call it on a deployed model whose bias caches are warm (:func:`warm_bias_caches`).
    """
    check_compiler_available(COMPILED_DEPLOY)
    backbones = backbones_in(model)
    necks = necks_of(model, backbones)
    # a neck: one graph per size for float32 features and one under autocast
    make_room_for_graphs((len(backbones) + 2 * len(necks)) * len(sizes))
    compile_seconds: Dict[Tuple[int, int], float] = {}
    with torch.no_grad():
        for backbone in backbones:
            device = next(backbone.parameters()).device
            compile_frozen(backbone)
            for height, width in sizes:
                image = torch.zeros(1, 3, height, width, device=device)
                start = time.perf_counter()
                backbone(image)
                key = (height, width)
                compile_seconds[key] = compile_seconds.get(key, 0.0) + (time.perf_counter() - start)
    for neck in necks:
        compile_frozen(neck)
    return compile_seconds
