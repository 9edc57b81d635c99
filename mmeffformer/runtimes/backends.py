"""Runtimes for an exported file behind one interface: ``backend(image) -> outputs``.

- ``onnxruntime``: ONNX Runtime; CPU, or CUDA when its provider is installed
  and ``device='cuda'``.
- ``openvino``: OpenVINO on the CPU. ``precision='default'`` keeps OpenVINO's
  own choice (bf16 on a CPU with native bf16, AMX or AVX512-BF16, else fp32);
  ``'fp32'`` forces float32, ``'bf16'`` asks for bf16.

- ``executorch``: ExecuTorch (XNNPACK) on the ``.pte`` program of
  ``tools/export_executorch.py``, fp32 or INT8 as written; it refuses a size above the
  program's bound.

OpenVINO also runs the INT8 ``.xml`` IR of ``tools/quantize.py``. ONNX Runtime and OpenVINO
come with ``pip install 'mmeffformer[deploy]'``, ExecuTorch with ``'mmeffformer[mobile]'``
(``make setup`` installs both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .program_constants import (
    BOUND_METHOD,
    HEAD_LOGITS,
    METADATA_METHOD,
    MODEL_CFG_METHOD,
    read_json_constant,
)
from .signal_stack import kept_signal_stack

BACKENDS = ('onnxruntime', 'openvino', 'executorch')
PRECISIONS = ('default', 'fp32', 'bf16')
EXTRA = "pip install 'mmeffformer[deploy]'"
MOBILE_EXTRA = "pip install 'mmeffformer[mobile]'"
#: the file each backend runs
SUFFIXES = {'onnxruntime': ('.onnx',), 'openvino': ('.onnx', '.xml'), 'executorch': ('.pte',)}


def _import(module: str, package: str, extra: str = EXTRA):
    try:
        return __import__(module, fromlist=['_'])
    except ImportError as error:
        kind = 'mobile' if extra == MOBILE_EXTRA else 'deploy'
        raise ImportError(
            f'the {package!r} runtime is not installed; install the {kind} extra: {extra} '
            f'(or: pip install {package})'
        ) from error


class Backend:
    """An exported file loaded in a runtime; call it on a float32 NCHW image."""

    name = ''

    def __init__(self, path: str) -> None:
        self.path = path
        self.output_names: List[str] = []
        self.precision = 'fp32'

    def __call__(self, image: np.ndarray) -> List[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> str:
        return f'{self.name} ({self.precision})'


class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, path: str, device: str = 'cpu', threads: Optional[int] = None) -> None:
        super().__init__(path)
        ort = _import('onnxruntime', 'onnxruntime')
        providers = ['CPUExecutionProvider']
        if device == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise RuntimeError(
                    'device cuda asked for, but this onnxruntime has no CUDAExecutionProvider '
                    f'(available: {ort.get_available_providers()}); install onnxruntime-gpu'
                )
            providers.insert(0, 'CUDAExecutionProvider')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.device = device

    def __call__(self, image: np.ndarray) -> List[np.ndarray]:
        return self.session.run(self.output_names, {'image': np.ascontiguousarray(image)})

    def describe(self) -> str:
        return f'onnxruntime ({self.device}, fp32)'


class OpenVINOBackend(Backend):
    name = 'openvino'

    def __init__(
        self, path: str, precision: str = 'default', threads: Optional[int] = None
    ) -> None:
        super().__init__(path)
        ov = _import('openvino', 'openvino')
        core = ov.Core()
        config: Dict[str, str] = {}
        if precision == 'fp32':
            config['INFERENCE_PRECISION_HINT'] = 'f32'
        elif precision == 'bf16':
            config['INFERENCE_PRECISION_HINT'] = 'bf16'
        if threads:
            config['INFERENCE_NUM_THREADS'] = str(threads)
        with kept_signal_stack():  # models can then be freed in any order
            self._use(core.compile_model(path, 'CPU', config))

    @classmethod
    def of_compiled(cls, compiled) -> OpenVINOBackend:
        """A backend around a model already compiled (NNCF hands these to a validation)."""
        backend = cls.__new__(cls)
        Backend.__init__(backend, '<compiled model>')
        backend._use(compiled)
        return backend

    def _use(self, compiled) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in compiled.outputs]
        hint = compiled.get_property('INFERENCE_PRECISION_HINT')
        name = hint.get_type_name() if hasattr(hint, 'get_type_name') else str(hint)
        self.precision = {'f32': 'fp32', 'f16': 'fp16'}.get(name, name)

    def __call__(self, image: np.ndarray) -> List[np.ndarray]:
        results = self.request.infer({'image': np.ascontiguousarray(image)})
        return [np.asarray(results[output]) for output in self.compiled.outputs]

    def describe(self) -> str:
        return f'openvino (CPU, {self.precision})'


def load_program(path: str):
    """An ExecuTorch program, loaded (its methods are loaded on use)."""
    runtime = _import('executorch.runtime', 'executorch', MOBILE_EXTRA)
    return runtime.Runtime.get().load_program(path)


def program_metadata(program) -> Dict[str, str]:
    """The description a program of tools/export_executorch.py carries (empty if none)."""
    if METADATA_METHOD not in program.method_names:
        return {}
    return read_json_constant(program, METADATA_METHOD)


def _logits_at_input_size(method, align_corners: bool) -> Callable:
    """A segmentor program's ``forward`` (the decode head's logits) with the logits resized
    to the input, as the ONNX graph resizes them."""
    import torch
    import torch.nn.functional as F

    def run(image: torch.Tensor) -> List[torch.Tensor]:
        (logits,) = method.execute([image])
        size = image.shape[-2:]
        with torch.no_grad():
            return [F.interpolate(logits, size, mode='bilinear', align_corners=align_corners)]

    return run


class ExecuTorchBackend(Backend):
    """An ExecuTorch program (``.pte``, XNNPACK) in the ExecuTorch runtime's Python binding;
    a detector's program with the rest of its inference in PyTorch
    (:mod:`mmeffformer.runtimes.program_detector`)."""

    name = 'executorch'

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.program = load_program(path)
        names = self.program.method_names
        self.max_shape = (
            tuple(self.program.load_method(BOUND_METHOD).execute([]))
            if BOUND_METHOD in names
            else None
        )
        metadata = self.metadata()
        self.precision = metadata.get('precision', 'fp32')
        from .program_detector import ProgramDetector

        if MODEL_CFG_METHOD in names:
            self.run = ProgramDetector(self.program)
        elif metadata.get(HEAD_LOGITS[0]) == HEAD_LOGITS[1]:
            align_corners = metadata.get('align_corners') == 'true'
            self.run = _logits_at_input_size(self.program.load_method('forward'), align_corners)
        else:
            method = self.program.load_method('forward')
            self.run = lambda image: method.execute([image])

    def metadata(self) -> Dict[str, str]:
        """The model's description written by tools/export_executorch.py (empty if none)."""
        return program_metadata(self.program)

    def __call__(self, image: np.ndarray) -> List[np.ndarray]:
        import torch

        height, width = image.shape[-2:]
        if self.max_shape and (height > self.max_shape[0] or width > self.max_shape[1]):
            raise ValueError(
                f'{self.path} serves images up to {self.max_shape[0]}x{self.max_shape[1]} '
                f'(its --max-shape); got {height}x{width}: export it with a larger --max-shape'
            )
        outputs = self.run(torch.from_numpy(np.ascontiguousarray(image)))
        return [np.asarray(o) for o in outputs]

    def describe(self) -> str:
        return f'executorch (XNNPACK, {self.precision})'


def build_backend(
    name: str,
    path: str,
    precision: str = 'default',
    device: str = 'cpu',
    threads: Optional[int] = None,
) -> Backend:
    """Load ``path`` in runtime ``name``; errors name the accepted values."""
    if name not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {name!r}')
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if not str(path).endswith(('.onnx', '.xml', '.pte')):
        raise ValueError(
            f'an exported model is an .onnx file, an OpenVINO .xml IR (tools/quantize.py) or '
            f'an ExecuTorch .pte program (tools/export_executorch.py), got {path!r}'
        )
    if not str(path).endswith(SUFFIXES[name]):
        kind = {'.xml': 'an OpenVINO .xml IR', '.pte': 'an ExecuTorch .pte program'}
        runs = {'.xml': 'openvino', '.pte': 'executorch'}
        suffix = Path(path).suffix
        if suffix in kind:
            raise ValueError(f'{kind[suffix]} runs in the {runs[suffix]} backend, not {name!r}')
        raise ValueError(
            f'the {name} backend runs {" or ".join(SUFFIXES[name])} files, got {path!r}'
        )
    builders: Dict[str, Callable[[], Backend]] = {
        'onnxruntime': lambda: OnnxRuntimeBackend(path, device, threads),
        'openvino': lambda: OpenVINOBackend(path, precision, threads),
        'executorch': lambda: ExecuTorchBackend(path),
    }
    if name == 'executorch' and (precision == 'bf16' or device != 'cpu'):
        raise ValueError(
            'the executorch backend runs a .pte on the CPU in the precision it was written in '
            f'(fp32 or INT8); got precision {precision!r}, device {device!r}'
        )
    if name == 'onnxruntime' and precision == 'bf16':
        raise ValueError("onnxruntime runs these files in fp32; precision 'bf16' is openvino's")
    if name == 'openvino' and device != 'cpu':
        raise ValueError(f'the openvino backend runs on the CPU, got device {device!r}')
    return builders[name]()
