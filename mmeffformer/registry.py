"""Registries of mmeffformer, children of mmengine's root registries.

Being children of the roots makes ``type='mmeffformer.EfficientFormer'``
resolvable from any OpenMMLab 2.0 config (mmdet, mmseg, ...): mmengine imports
``mmeffformer.registry`` when it meets the scope prefix, and ``locations``
imports the modules that register themselves.
"""

from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope, Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['mmeffformer.models', 'mmeffformer.detection']
)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['mmeffformer.datasets'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmeffformer.amp'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmeffformer.evaluation'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmeffformer.amp']
)


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every module that registers something in mmeffformer.

    Args:
        init_default_scope: Also make ``mmeffformer`` the default scope. Leave
            it off inside mmdet / mmseg runs, whose configs set their own scope
            and reach our modules through the ``mmeffformer.`` prefix.
    """
    import mmeffformer.amp  # noqa: F401
    import mmeffformer.datasets  # noqa: F401
    import mmeffformer.detection  # noqa: F401
    import mmeffformer.evaluation  # noqa: F401
    import mmeffformer.models  # noqa: F401

    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('mmeffformer', scope_name='mmeffformer')
