"""Registries of mmeffformer, children of mmengine's root registries.

Being children of the roots makes ``type='mmeffformer.EfficientFormer'``
resolvable from any OpenMMLab 2.0 config (mmdet, mmseg, ...): mmengine imports
``mmeffformer.registry`` when it meets the scope prefix, and ``locations``
imports the modules that register themselves. This file imports nothing else
of mmeffformer.
"""

from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

# RoI heads import mmdet; they are a location of their own so that the
# backbones (and mmseg users) do not pull in mmdet.
MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    locations=['mmeffformer.models', 'mmeffformer.models.roi_heads', 'mmeffformer.runtimes'],
)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['mmeffformer.datasets'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmeffformer.engine'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmeffformer.evaluation'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmeffformer.engine']
)
