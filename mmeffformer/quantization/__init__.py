"""Post-training INT8 quantization of exported models: calibration images drawn through a
config's own test-time pipeline, and NNCF on the OpenVINO model of an exported file.

Needs the quantization extra: ``pip install 'mmeffformer[quantize]'`` (``make setup``
installs it)."""

from .calibration import calibration_inputs
from .openvino_int8 import FLOAT_SCOPE, quantize_openvino

__all__ = ['FLOAT_SCOPE', 'calibration_inputs', 'quantize_openvino']
