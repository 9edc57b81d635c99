"""Deploy mode equals eval mode, with no BatchNorm left and no bias work at seen sizes."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmeffformer.models import EfficientFormer, EfficientFormerV2
from mmeffformer.models.layers import LayerScale
from mmeffformer.models.layers.attention_bias import _CachedBias
from tests.helpers.tiny_models import TINY_V1, randomise_batchnorm
from tests.helpers.v2_reference import arch_dict


@pytest.mark.parametrize(
    'model, num_biases',
    [
        # TINY_V1: 2 attention blocks in stage 4
        (lambda: EfficientFormer(TINY_V1, drop_path_rate=0.1), 2),
        (lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128), 2),
        # V2 tiny: one attention block in stages 3 and 4, plus the stage-4 downsampling attention
        (lambda: EfficientFormerV2(arch_dict('tiny'), drop_path_rate=0.1), 3),
    ],
)
@pytest.mark.compat
def test_deploy_equals_eval_and_serves_cached_biases(model, num_biases):
    model = model()
    randomise_batchnorm(model)
    model.eval()
    x = torch.rand(2, 3, 97, 143)
    with torch.no_grad():
        expected = model(x)
    model.switch_to_deploy(sizes=[(97, 143)])
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    biases = [m for m in model.modules() if isinstance(m, _CachedBias)]
    assert len(biases) == num_biases  # "no bias computed" below must not hold vacuously
    computed = []
    for bias in biases:
        original = bias.compute
        bias.compute = lambda *a, _o=original: computed.append(1) or _o(*a)
    got = model(x)  # gradients enabled: still served from the cache
    assert computed == []
    assert not any(isinstance(m, LayerScale) for m in model.modules())
    with torch.no_grad():
        fused = model(x)  # also without autograd
    for outputs in (got, fused):
        for a, b in zip(outputs, expected):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_the_steps_of_switch_to_deploy_called_alone_give_the_same_model():
    from mmeffformer.models import (
        reparameterize_modules,
        set_deploy_precision,
        switch_to_deploy,
        warm_bias_caches,
    )

    first = EfficientFormerV2(arch_dict('tiny'))
    randomise_batchnorm(first)
    second = EfficientFormerV2(arch_dict('tiny'))
    second.load_state_dict(first.state_dict())
    x = torch.rand(1, 3, 97, 143)
    switch_to_deploy(first, sizes=[(97, 143)], dtype=torch.bfloat16)
    second.eval()
    reparameterize_modules(second)
    set_deploy_precision(second, torch.bfloat16)
    warm_bias_caches(second, [(97, 143)])
    assert not any(isinstance(m, _BatchNorm) for m in second.modules())
    with torch.no_grad():
        for a, b in zip(first(x), second(x)):
            assert a.dtype == b.dtype == torch.float32
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match='int8'):
        set_deploy_precision(second, torch.int8)


@pytest.mark.usefixtures('fresh_dynamo')
@pytest.mark.parametrize(
    'build',
    [
        lambda: EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128),
        lambda: EfficientFormerV2(arch_dict('tiny'), attn_bias='official', attn_bias_size=128),
    ],
    ids=['v1-official', 'v2-official'],
)
def test_compiled_deploy_is_one_graph_equal_to_eager_and_never_recompiles(build):
    import copy

    from torch._dynamo.utils import counters

    from mmeffformer.models import switch_to_deploy

    model = build()
    randomise_batchnorm(model)
    eager = switch_to_deploy(copy.deepcopy(model), sizes=[(96, 128)])
    graphs_before = counters['stats']['unique_graphs']
    compiled = switch_to_deploy(model, sizes=[(96, 128)], compile=True)  # fullgraph=True
    assert compiled is model and (96, 128) in model.deploy_compile_seconds
    assert counters['stats']['unique_graphs'] == graphs_before + 1  # one graph, no breaks
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        for _ in range(3):
            for got, want in zip(model(x), eager(x)):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    model(x)  # with gradients enabled: compiled deploy runs without autograd, same graph
    with torch.inference_mode():  # as the benchmarks time: same graph too
        model(x)
    assert counters['stats']['unique_graphs'] == graphs_before + 1  # served size: no recompile


def test_compiled_deploy_freezes_weights_and_reads_cached_biases_as_constants():
    from mmeffformer.models import switch_to_deploy

    model = EfficientFormer(TINY_V1, attn_bias='official', attn_bias_size=128)
    randomise_batchnorm(model)
    biases = [m for m in model.modules() if isinstance(m, _CachedBias)]
    computed = []
    for bias in biases:  # counts eager computations and dynamo tracing the resize alike
        original = bias.compute
        bias.compute = lambda *a, _o=original: computed.append(1) or _o(*a)
    switch_to_deploy(model, sizes=[(96, 128)], compile=True)
    assert len(computed) == len(biases) == 2  # the eager fill only: not traced into the graph
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        before = model(x)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.weight.mul_(2)  # a graph with weights as inputs would see this
        after = model(x)
    for got, want in zip(after, before):  # frozen: the graph holds the weights as constants
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_compile_without_a_cpp_compiler_fails_naming_the_cause():
    from torch._inductor import config

    from mmeffformer.models import switch_to_deploy

    model = EfficientFormer(TINY_V1)
    with config.patch({'cpp.cxx': ('no-such-c++-compiler',)}):  # restored on exit
        with pytest.raises(
            RuntimeError, match='needs a C\\+\\+ compiler.*no-such-c\\+\\+-compiler'
        ):
            switch_to_deploy(model, sizes=[(64, 64)], compile=True)
    assert any(isinstance(m, _BatchNorm) for m in model.modules())  # nothing was rewritten


@pytest.mark.usefixtures('fresh_dynamo')
def test_compiled_deploy_serves_more_sizes_than_dynamos_default_limit(monkeypatch):
    from torch._dynamo import config

    from mmeffformer.models import deploy_mode

    # dynamo's capture is what limits the shapes; the eager backend keeps this fast
    monkeypatch.setattr(
        deploy_mode,
        'compile_frozen',
        lambda backbone: backbone.compile(fullgraph=True, dynamic=False, backend='eager'),
    )
    sizes = [(32 + 32 * i, 64) for i in range(10)]  # ten sizes: past the default limit of 8
    model = EfficientFormer(TINY_V1)
    with config.patch(recompile_limit=8):  # restored on exit
        deploy_mode.switch_to_deploy(model, sizes=sizes, compile=True)
        assert sorted(model.deploy_compile_seconds) == sorted(sizes)
        with torch.no_grad():
            model(torch.rand(1, 3, 48, 80))  # and a new size after them still compiles


@pytest.mark.usefixtures('fresh_dynamo')
def test_compiled_deploy_compiles_the_neck_frozen_one_graph_per_autocast_state():
    from torch._dynamo.utils import counters

    from mmeffformer.models import switch_to_deploy
    from tests.helpers.downstream import tiny_semantic_fpn

    model = tiny_semantic_fpn()
    randomise_batchnorm(model)
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        eager = model.extract_feat(image)
    switch_to_deploy(model, sizes=[(64, 96)], compile=True)
    graphs = counters['stats']['unique_graphs']
    with torch.no_grad():
        features = model.backbone(image)
        compiled = model.neck(features)
        assert counters['stats']['unique_graphs'] == graphs + 1  # the neck: one graph
        for got, want in zip(compiled, eager):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
        conv = next(m for m in model.neck.modules() if isinstance(m, torch.nn.Conv2d))
        conv.weight.mul_(2)  # frozen: the graph holds the weights as constants
        for got, want in zip(model.neck(features), compiled):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert counters['stats']['unique_graphs'] == graphs + 1  # no recompile
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model.neck(features)
        assert counters['stats']['unique_graphs'] == graphs + 2  # autocast: a graph of its own
        assert all(level.dtype == torch.bfloat16 for level in low)
