"""Building blocks shared by both backbones."""

from .attention_bias import OfficialResizedBias, RelativeOffsetBias, build_attention_bias
from .conv_norm import ConvNorm
from .layer_scale import LayerScale
from .resampling import MeanPool3x3, mean_pool3x3, resize_bilinear

__all__ = [
    'ConvNorm',
    'LayerScale',
    'MeanPool3x3',
    'OfficialResizedBias',
    'RelativeOffsetBias',
    'build_attention_bias',
    'mean_pool3x3',
    'resize_bilinear',
]
