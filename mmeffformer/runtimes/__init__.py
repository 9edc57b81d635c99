"""The runtimes of exported files (ONNX Runtime, OpenVINO) and an exported file as an
mmengine model, so a config's test loop and metric evaluate it."""

from .backends import BACKENDS, PRECISIONS, build_backend
from .runtime_model import (
    ExportedDetector,
    ExportedSegmentor,
    check_file_fits,
    exported_model_cfg,
    runtime_input,
)

__all__ = [
    'BACKENDS',
    'ExportedDetector',
    'ExportedSegmentor',
    'PRECISIONS',
    'build_backend',
    'check_file_fits',
    'exported_model_cfg',
    'runtime_input',
]
