"""mmeffformer's registries are children of mmengine's roots and import lazily."""

from __future__ import annotations

import subprocess
import sys

from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS

from mmeffformer.registry import MODELS, TRANSFORMS
from tests.helpers.fresh_interpreter import run_fresh


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


def test_custom_imports_in_a_config_import_the_backbones(tmp_path):
    """As the README's config example does it: the config file's ``custom_imports``
    imports mmeffformer.models, and mmdet's registry then builds the backbone."""
    for imports in (True, False):
        config = tmp_path / f'config_{imports}.py'
        line = "custom_imports = dict(imports=['mmeffformer.models'], allow_failed_imports=False)"
        config.write_text(
            (line if imports else '')
            + "\nbackbone = dict(type='mmeffformer.EfficientFormer', arch='l1', out_indices=(3,))\n"
        )
        code = (
            'import sys\n'
            'from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(config)!r})\n'
            "print('mmeffformer.models' in sys.modules)\n"
            'from mmengine.registry import init_default_scope\n'
            "init_default_scope('mmdet')\n"
            'from mmdet.registry import MODELS\n'
            'import torch\n'
            'model = MODELS.build(cfg.backbone).eval()\n'
            'print(tuple(model(torch.rand(1, 3, 64, 96))[0].shape))\n'
        )
        loaded, shape = run_fresh(code).splitlines()
        assert loaded == str(imports)  # the config, not anything else, imported the models
        assert shape == '(1, 448, 2, 3)'
