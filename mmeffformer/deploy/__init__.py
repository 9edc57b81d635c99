"""Deployment: export to ONNX and the check of the exported file against PyTorch.

Deploy mode itself (the inference rewrite of a backbone) is
:func:`mmeffformer.models.switch_to_deploy`.
"""

from .onnx_check import Verification, verify_onnx
from .onnx_export import DEFAULT_OPSET, SegmentorLogits, export_onnx, exportable, output_names

__all__ = [
    'DEFAULT_OPSET',
    'SegmentorLogits',
    'Verification',
    'export_onnx',
    'exportable',
    'output_names',
    'verify_onnx',
]
