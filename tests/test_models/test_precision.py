"""Reduced-precision, channels-last deploy and channels-last inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.models import EfficientFormer, EfficientFormerV2, switch_to_deploy
from mmeffformer.models.layers.attention_bias import _CachedBias
from mmeffformer.models.layers.layer_scale import LayerScale
from mmeffformer.models.layers.mixed_precision import Float32Norm, ReducedPrecisionBranch
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict

MODELS = {
    'v1': lambda: EfficientFormer(TINY_V1),
    'v1-official': lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128),
    'v2': lambda: EfficientFormerV2(arch_dict('tiny'), norm_out=True),
}
# bfloat16 keeps 8 significant bits, float16 11: errors relative to the largest feature
TOLERANCE = {torch.bfloat16: 4e-2, torch.float16: 5e-3}


def assert_relative_close(got: torch.Tensor, want: torch.Tensor, tolerance: float) -> None:
    error = (got - want).abs().max().item()
    assert error <= tolerance * want.abs().max().item(), (error, want.abs().max().item())


def owned_convs(module: torch.nn.Module) -> list:
    """Convolutions under ``module``, not counting those inside a nested precision wrapper."""
    found = []
    for child in module.children():
        if isinstance(child, torch.nn.Conv2d):
            found.append(child)
        elif not isinstance(child, ReducedPrecisionBranch):
            found += owned_convs(child)
    return found


def eval_model_and_outputs(build, shape: tuple) -> tuple:
    """A seeded model with trained-like statistics in eval mode, an image, its outputs."""
    torch.manual_seed(0)
    model = build()
    randomise_batchnorm(model)
    model.eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        return model, x, model(x)


def relative_errors(got, want) -> list:
    return [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, want)]


@pytest.mark.parametrize('float32_residual', [True, False])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', sorted(MODELS))
def test_reduced_precision_deploy_matches_float32_eval(name, dtype, float32_residual):
    model, x, expected = eval_model_and_outputs(MODELS[name], (2, 3, 97, 143))
    switch_to_deploy(model, sizes=[(97, 143)], dtype=dtype, float32_residual=float32_residual)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    wrappers = [m for m in model.modules() if isinstance(m, ReducedPrecisionBranch)]
    if float32_residual:
        # stem, downsamples and branches in dtype; V2's talking heads and projections float32
        assert {w.dtype for w in wrappers} == {dtype} | ({torch.float32} if name == 'v2' else set())
        for wrapper in wrappers:
            assert all(c.weight.dtype == wrapper.dtype for c in owned_convs(wrapper))
        assert sum(len(owned_convs(w)) for w in wrappers) == len(convs)
    else:
        assert not wrappers and all(c.weight.dtype == dtype for c in convs)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    norms = [m for m in model.modules() if isinstance(m, Float32Norm)]
    assert norms and all(p.dtype == torch.float32 for n in norms for p in n.parameters())
    assert not any(isinstance(m, (_BatchNorm, LayerScale)) for m in model.modules())
    biases = [m for m in model.modules() if isinstance(m, _CachedBias)]
    assert biases and all(b.table.dtype == torch.float32 for b in biases)
    with torch.no_grad():
        got = model(x)
    for a, b in zip(got, expected):
        assert a.dtype == torch.float32 and a.is_contiguous() and a.shape == b.shape
        assert_relative_close(a, b, TOLERANCE[dtype])


# narrow and deep: the rounding of a bf16 residual stream accumulates over the blocks
DEEP = {
    'v1': lambda: EfficientFormer(
        dict(widths=(8, 16, 24, 32), depths=(3, 3, 9, 4), num_attention=2)
    ),
    'v2': lambda: EfficientFormerV2(
        dict(
            widths=(8, 16, 24, 32),
            depths=(3, 3, 9, 4),
            num_attention=2,
            mlp_ratios=[[2] * 3, [2] * 3, [3] * 9, [3] * 4],
        )
    ),
}


@pytest.mark.parametrize('name', sorted(DEEP))
def test_float32_residual_stream_stays_float32_and_is_more_accurate(name):
    model, x, expected = eval_model_and_outputs(DEEP[name], (1, 3, 160, 224))
    with torch.no_grad():
        errors = {}
        for float32_residual in (True, False):
            low = switch_to_deploy(
                copy.deepcopy(model), dtype=torch.bfloat16, float32_residual=float32_residual
            )
            stream = []
            for stage in low.stages:
                stage.blocks[0].register_forward_hook(
                    lambda m, a, out, seen=stream: seen.append(out.dtype)
                )
            errors[float32_residual] = max(relative_errors(low(x), expected))
            want = torch.float32 if float32_residual else torch.bfloat16
            assert stream == [want] * 4, stream
    # measured here: v1 5.8e-3 against 1.8e-2, v2 7.5e-3 against 1.6e-2
    assert errors[True] < 0.6 * errors[False], errors


def test_float16_deploy_does_not_overflow_with_large_activations_at_800x1216():
    """Trained-magnitude weights: layer scales near 1 and BN gains of 3 make stage
    activations grow into the thousands; squares in a float16 LayerNorm would overflow."""
    torch.manual_seed(0)
    model = EfficientFormer(TINY_V1)
    randomise_batchnorm(model)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.weight.data.mul_(3)
        if isinstance(module, LayerScale):
            module.gamma.data.fill_(1.0)
    model.eval()
    x = torch.rand(1, 3, 800, 1216) * 30
    with torch.no_grad():
        expected = model.stages[3](model.stages[2](model.stages[1](model.stages[0](model.stem(x)))))
        reference = model(x)
    # representable in float16 (< 65504), but their squares are not
    assert 300 < expected.abs().max() < 60000
    switch_to_deploy(model, sizes=[(800, 1216)], dtype=torch.float16)
    with torch.no_grad():
        got = model(x)
    for a, b in zip(got, reference):
        assert torch.isfinite(a).all()
        assert_relative_close(a, b, TOLERANCE[torch.float16])


def test_bad_dtype_is_named_before_anything_changes():
    model = EfficientFormer(TINY_V1).eval()
    with pytest.raises(ValueError, match=r'Unsupported deploy dtype torch.int8; choose one of'):
        switch_to_deploy(model, dtype=torch.int8)
    assert any(isinstance(m, _BatchNorm) for m in model.modules())  # untouched


def test_channels_last_input_and_output_layout_are_kept():
    model = switch_to_deploy(EfficientFormer(TINY_V1), dtype=torch.bfloat16)
    x = torch.rand(1, 3, 64, 96).to(memory_format=torch.channels_last)
    with torch.no_grad():
        outs = model(x)
    assert all(o.dtype == torch.float32 for o in outs)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outs)


def test_under_autocast_to_the_deploy_dtype_features_stay_in_it():
    model = switch_to_deploy(EfficientFormer(TINY_V1), dtype=torch.bfloat16)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        plain = model(x)
        with torch.autocast('cpu', torch.bfloat16):
            kept = model(x)
        with torch.autocast('cpu', torch.float16):  # another dtype: given back as usual
            other = model(x)
    for a, b, c in zip(kept, plain, other):
        assert a.dtype == torch.bfloat16 and a.is_contiguous(memory_format=torch.channels_last)
        assert c.dtype == torch.float32 and c.is_contiguous()
        torch.testing.assert_close(a, b.to(torch.bfloat16), rtol=0, atol=0)  # the same values


@pytest.mark.parametrize('name', ['v1', 'v2'])
def test_channels_last_training_matches_nchw(name):
    """Not deployed: channels-last images give the NCHW outputs and gradients."""
    torch.manual_seed(0)
    nchw = MODELS[name]()
    channels_last = MODELS[name]().to(memory_format=torch.channels_last)
    channels_last.load_state_dict(nchw.state_dict())
    x = torch.rand(2, 3, 70, 90)
    outs = [
        m.train()(inp)
        for m, inp in ((nchw, x), (channels_last, x.to(memory_format=torch.channels_last)))
    ]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for out in outs:
        sum(o.square().mean() for o in out).backward()
    for (key, a), (_, b) in zip(nchw.named_parameters(), channels_last.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=key)
