"""Post-training INT8 quantization, calibrated on images of a config's own dataset drawn
through its test-time pipeline: NNCF on the OpenVINO model of an exported file, and PT2E
(torchao's X86 Inductor quantizer) on the backbone and neck of a PyTorch model.

Needs the quantization extra: ``pip install 'mmeffformer[quantize]'`` (``make setup``
installs it)."""

from .accuracy_control import AccuracyControl, ConfigMetric
from .calibration import calibration_batches, calibration_inputs
from .openvino_int8 import FLOAT_SCOPE, quantize_openvino
from .pytorch_int8 import (
    FeatureExtractor,
    QuantizedFeatures,
    quantize_module,
    quantize_pytorch,
    read_pt2_description,
    use_quantized_features,
)

__all__ = [
    'AccuracyControl',
    'ConfigMetric',
    'FLOAT_SCOPE',
    'FeatureExtractor',
    'QuantizedFeatures',
    'calibration_batches',
    'calibration_inputs',
    'quantize_module',
    'quantize_openvino',
    'quantize_pytorch',
    'read_pt2_description',
    'use_quantized_features',
]
