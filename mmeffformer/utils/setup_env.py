"""``register_all_modules``: where mmengine (and mmdet / mmseg users) look for it."""

from __future__ import annotations

from mmengine.registry import DefaultScope


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every module that registers something in mmeffformer.

    Args:
        init_default_scope: Also make ``mmeffformer`` the default scope. Leave
            it off inside mmdet / mmseg runs, whose configs set their own scope
            and reach our modules through the ``mmeffformer.`` prefix.
    """
    import mmeffformer.datasets  # noqa: F401
    import mmeffformer.engine  # noqa: F401
    import mmeffformer.evaluation  # noqa: F401
    import mmeffformer.models  # noqa: F401
    import mmeffformer.models.roi_heads  # noqa: F401

    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('mmeffformer', scope_name='mmeffformer')
