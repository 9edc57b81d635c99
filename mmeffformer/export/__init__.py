"""Export to ONNX: the graphs of backbones, segmentors and detectors (NMS and RoIAlign as ONNX
ops), the export itself with its metadata, and the check of a file against PyTorch; and to
ExecuTorch (:mod:`mmeffformer.export.executorch_export`, imported on use).

The runtimes that run the files are :mod:`mmeffformer.runtimes`; deploy mode (the inference
rewrite of a backbone) is :func:`mmeffformer.models.switch_to_deploy`.
"""

from mmeffformer.models.graphs.detector_graph import DetectorGraph, UnsupportedModelError

from .onnx_check import Verification, report, second_size, verify_file, verify_onnx
from .onnx_export import (
    DEFAULT_OPSET,
    SegmentorGraph,
    describe,
    export_onnx,
    exportable,
    output_names,
    read_metadata,
)

__all__ = [
    'DEFAULT_OPSET',
    'DetectorGraph',
    'SegmentorGraph',
    'UnsupportedModelError',
    'Verification',
    'describe',
    'export_onnx',
    'exportable',
    'output_names',
    'read_metadata',
    'report',
    'second_size',
    'verify_file',
    'verify_onnx',
]
