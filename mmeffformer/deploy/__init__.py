"""Deployment: export to ONNX, the check of a file against PyTorch, the runtimes and
the exported file as an mmengine model (for a config's test loop and metric).

Deploy mode itself (the inference rewrite of a backbone) is
:func:`mmeffformer.models.switch_to_deploy`.
"""

from .backends import BACKENDS, PRECISIONS, build_backend
from .detector_graph import DetectorGraph, UnsupportedModelError
from .onnx_check import Verification, second_size, verify_onnx
from .onnx_export import (
    DEFAULT_OPSET,
    SegmentorGraph,
    describe,
    export_onnx,
    exportable,
    output_names,
    read_metadata,
)
from .runtime_model import (
    ExportedDetector,
    ExportedSegmentor,
    check_file_fits,
    exported_model_cfg,
)

__all__ = [
    'BACKENDS',
    'DEFAULT_OPSET',
    'DetectorGraph',
    'ExportedDetector',
    'ExportedSegmentor',
    'PRECISIONS',
    'SegmentorGraph',
    'UnsupportedModelError',
    'Verification',
    'build_backend',
    'check_file_fits',
    'describe',
    'export_onnx',
    'exportable',
    'exported_model_cfg',
    'output_names',
    'read_metadata',
    'second_size',
    'verify_onnx',
]
