"""``register_all_modules`` imports every registering module and sets the scope only when asked."""

from __future__ import annotations

from tests.helpers.fresh_interpreter import run_fresh


def test_register_all_modules_sets_the_scope_only_when_asked():
    code = (
        'from mmengine.registry import DefaultScope\n'
        'from mmeffformer import register_all_modules\n'
        'register_all_modules(init_default_scope=False)\n'
        'print(DefaultScope.get_current_instance())\n'
        'register_all_modules(init_default_scope=True)\n'
        'print(DefaultScope.get_current_instance().scope_name)\n'
        'from mmeffformer.registry import MODELS\n'
        "print(MODELS.get('EfficientFormer').__name__)\n"
    )
    assert run_fresh(code).splitlines() == ['None', 'mmeffformer', 'EfficientFormer']


def test_an_existing_default_scope_is_kept():
    code = (
        'from mmengine.registry import DefaultScope, init_default_scope\n'
        "init_default_scope('mmdet')\n"
        'from mmeffformer import register_all_modules\n'
        'register_all_modules(init_default_scope=True)\n'
        'print(DefaultScope.get_current_instance().scope_name)\n'
    )
    assert run_fresh(code) == 'mmdet'
