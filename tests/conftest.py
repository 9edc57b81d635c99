"""Process-wide settings of the suite's worker processes."""

from __future__ import annotations

import os

import pytest


def _share_the_cores() -> None:
    """Give each pytest-xdist worker its share of the cores (at least one thread).

    Every torch process starts one OpenMP thread per core; with two workers on two cores
    that is four spinning threads on two cores, and the suite took 2.8x the CPU time it
    needs. Set before torch starts its thread pool; subprocesses of a test inherit it.
    An OMP_NUM_THREADS set by the caller is kept.
    """
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1 and 'OMP_NUM_THREADS' not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ['OMP_NUM_THREADS'] = str(threads)
        import torch

        torch.set_num_threads(threads)


_share_the_cores()


def pytest_collection_modifyitems(config, items) -> None:
    """Modules marked ``expensive`` first, the rest in their order: the workers (one test
    module at a time, ``--dist loadfile --no-loadscope-reorder``) then take the long
    modules while the short ones remain to even out the finish."""
    items.sort(key=lambda item: item.get_closest_marker('expensive') is None)


@pytest.fixture(scope='module', autouse=True)
def _module_leaves_no_mmengine_instances():
    """What a module's fixtures create in mmengine's globals (tools run in-process) ends
    with the module; see the fixture below."""
    from tests.helpers.scripts import mmengine_instances_restored

    with mmengine_instances_restored():
        yield


@pytest.fixture(autouse=True)
def _test_leaves_no_mmengine_instances():
    """What a test creates in mmengine's globals ends with it. A tool's ``main`` called
    in-process leaves its logger and visualizer registered under the run's timestamp; a run
    of a later test in the same worker within the same second would get them back (a
    detector's run then drew with a segmentor's visualizer), so whether a test passed
    depended on which modules its worker ran before."""
    from tests.helpers.scripts import mmengine_instances_restored

    with mmengine_instances_restored():
        yield
