"""OpenVINO models freed in the order they were compiled leave the thread's alternate signal
stack as it was (OpenVINO's CPU plugin would leave it at a freed stack, and the next signal
handled on it kills the process)."""

from __future__ import annotations

import gc

import pytest

from mmeffformer.runtimes import build_backend
from mmeffformer.runtimes.signal_stack import SS_DISABLE, current_signal_stack

pytest.importorskip('openvino')
onnx = pytest.importorskip('onnx')


def relu_file(path) -> str:
    """An ONNX file of one ReLU on a free-size ``image``."""
    helper = onnx.helper
    image = helper.make_tensor_value_info('image', onnx.TensorProto.FLOAT, [1, 3, 'h', 'w'])
    out = helper.make_tensor_value_info('out', onnx.TensorProto.FLOAT, [1, 3, 'h', 'w'])
    graph = helper.make_graph(
        [helper.make_node('Relu', ['image'], ['out'])], 'relu', [image], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    onnx.save(model, str(path))
    return str(path)


def test_models_freed_in_compile_order_leave_the_threads_signal_stack(tmp_path):
    before = current_signal_stack()
    if before is None:
        pytest.skip('no sigaltstack on this platform')
    path = relu_file(tmp_path / 'relu.onnx')
    first = build_backend('openvino', path)
    second = build_backend('openvino', path)
    del first  # freed first, as a test loop frees the runner it built first
    gc.collect()
    del second
    gc.collect()
    after = current_signal_stack()
    assert (after.ss_sp, after.ss_flags & SS_DISABLE, after.ss_size) == (
        before.ss_sp,
        before.ss_flags & SS_DISABLE,
        before.ss_size,
    )
