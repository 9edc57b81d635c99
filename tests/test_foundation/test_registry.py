"""mmeffformer's registries are children of mmengine's roots and import lazily."""

from __future__ import annotations

import subprocess
import sys

from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS

from mmeffformer.registry import MODELS, TRANSFORMS


def test_registries_are_children_of_the_roots():
    assert MODELS.parent is ROOT_MODELS and TRANSFORMS.parent is ROOT_TRANSFORMS
    assert MODELS.scope == 'mmeffformer'
    assert ROOT_MODELS._children['mmeffformer'] is MODELS


def test_scope_prefix_resolves_without_importing_the_models_first():
    """A fresh interpreter: mmdet's registry finds `mmeffformer.X` by itself."""
    code = (
        'from mmengine.registry import init_default_scope\n'
        "init_default_scope('mmdet')\n"
        'from mmdet.registry import MODELS\n'
        "cls = MODELS.get('mmeffformer.EfficientFormerV2')\n"
        'print(cls.__module__)\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'mmeffformer.models.backbones.efficientformer_v2'


def test_register_all_modules_sets_the_scope_when_asked():

    from mmeffformer import register_all_modules

    register_all_modules(init_default_scope=False)
    assert MODELS.get('EfficientFormer') is not None
