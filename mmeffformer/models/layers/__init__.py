"""Building blocks shared by both backbones."""

from .attention_bias import OfficialResizedBias, RelativeOffsetBias, build_attention_bias
from .conv_norm import ConvNorm
from .layer_scale import LayerScale

__all__ = [
    'ConvNorm',
    'LayerScale',
    'OfficialResizedBias',
    'RelativeOffsetBias',
    'build_attention_bias',
]
