"""Process settings for the suite's worker processes.

``make test`` runs the suite in pytest-xdist workers, one per core; each worker and every
tool it starts computes on one thread, so the workers do not contend for the cores.
"""

from __future__ import annotations

import os

if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'  # read by the tools the tests start

    import torch

    torch.set_num_threads(1)
