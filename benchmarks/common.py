"""What the benchmark scripts share: the recipes they build, the peers, ONNX Runtime calls."""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import mmeffformer  # noqa: E402,F401
from mmeffformer.export import export_onnx  # noqa: E402
from mmeffformer.models import switch_to_deploy  # noqa: E402
from mmeffformer.utils import cpu_has_native_bf16, interleaved_medians, matmul_gflops  # noqa: E402
from mmeffformer.utils.model_analysis import model_call, trained_like  # noqa: E402,F401

VARIANTS = ('l1', 'l3', 'l7', 'v2-s0', 'v2-s1', 'v2-s2', 'v2-l')
PEERS = {'ResNet-50': 50, 'ResNet-18': 18}
SIZES = {'512x512': (512, 512), '800x1216': (800, 1216)}
WARMUP = 2


def recipe(variant: str, size: tuple) -> str:
    """The recipe whose official bias table fits the size (512: segmentation)."""
    if size == (512, 512):
        return str(ROOT / 'configs' / f'semfpn_effformer_{variant}_ade20k.py')
    return str(ROOT / 'configs' / f'maskrcnn_effformer_{variant}_coco.py')


def build_peer(depth: int) -> torch.nn.Module:
    """mmdet's ResNet of ``depth`` with its 4 stages, in eval mode."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    model = MODELS.build(dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3)))
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return model


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest |got - want| over the largest |want|: the reduced-precision error measure."""
    got, want = got.float(), want.float()
    return ((got - want).abs().max() / want.abs().max().clamp(min=1e-30)).item()


def output_errors(got: Sequence, want: Sequence[torch.Tensor]) -> list:
    """``relative_error`` of each output (numpy arrays are taken as they are)."""
    return [relative_error(torch.as_tensor(g), w) for g, w in zip(got, want)]


def matmul_rates(repeats: int, emulated_bf16: bool = False) -> Dict[str, float]:
    """GFLOP/s of a 2048 x 2048 matrix product in fp32 and in bf16; bf16 only where the
    CPU has native bf16 unless ``emulated_bf16`` (emulated, it takes minutes)."""
    rates = {'fp32': matmul_gflops(WARMUP, max(repeats, 10), torch.float32)}
    if emulated_bf16 or cpu_has_native_bf16():
        rates['bf16'] = matmul_gflops(WARMUP, max(repeats, 10), torch.bfloat16)
    return rates


def bf16_autocast(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run under CPU bf16 autocast."""

    def autocast_call():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return call()

    return autocast_call


def medians(calls: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median ms of each call after the benchmarks' warm-up, the calls timed in turns."""
    return interleaved_medians(calls, WARMUP, repeats)


def eval_and_deploy_calls(
    model: torch.nn.Module, scope: str, part: str, size: tuple
) -> Dict[str, Callable[[], object]]:
    """One call per mode on the same weights: the model and a deployed copy."""
    deployed = switch_to_deploy(copy.deepcopy(model), sizes=[size])
    return {
        'eval': model_call(model, scope, part, 1, *size, 'cpu'),
        'deploy': model_call(deployed, scope, part, 1, *size, 'cpu'),
    }


def runtimes_on_export(
    module: torch.nn.Module,
    size: tuple,
    names: Sequence[str] = ('onnxruntime', 'openvino'),
    openvino_precision: str = 'default',
) -> dict:
    """The runtimes ``names`` on one ONNX export of ``module`` at ``size``, each on this
    CPU's threads (OpenVINO in ``openvino_precision``: its default is bf16 where the CPU
    has native bf16; ``describe()`` says which)."""
    from mmeffformer.runtimes import build_backend

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'model.onnx')
        export_onnx(module, path, size)
        precisions = {'openvino': openvino_precision}
        threads = torch.get_num_threads()
        return {
            name: build_backend(name, path, precisions.get(name, 'default'), threads=threads)
            for name in names
        }


def openvino_on_export(module: torch.nn.Module, size: tuple):
    """OpenVINO, in its default precision, on ``module``'s ONNX export at ``size``."""
    return runtimes_on_export(module, size, ('openvino',))['openvino']


def fmt(value: Optional[float], digits: int = 1) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def machine_description() -> str:
    """The CPU, its bf16 support, threads and torch version, for a results page."""
    from mmeffformer.utils import cpu_info

    info = cpu_info()
    flags = ', '.join(info['bf16_flags']) or 'none'
    return (
        f'{info["model"]} (bf16 flags: {flags}), {torch.get_num_threads()} threads, '
        f'torch {torch.__version__}'
    )
