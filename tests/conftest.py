"""Fixtures shared by the whole suite. Tests write only into temporary folders, never into the repository."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> Path:
    "The root of this checkout (where settings.ini is)."
    return ROOT


@pytest.fixture(scope='session', autouse=True)
def isolated_env(tmp_path_factory):
    """For the whole session: the artifact cache ($INVDIFF_CACHE) in a temporary folder, and this checkout first
    on PYTHONPATH so that subprocesses and papermill kernels import the code under test."""
    mp = pytest.MonkeyPatch()
    mp.setenv('INVDIFF_CACHE', str(tmp_path_factory.mktemp('invdiff_cache')))
    mp.setenv('PYTHONPATH', os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]))
    mp.delenv('INVDIFF_REPRODUCE_DEPTH', raising=False)   # tests start outside any reproduce run
    if os.environ.get('PYTEST_XDIST_WORKER'):              # `make test` runs one worker per core (pytest-xdist): each
        mp.setenv('OMP_NUM_THREADS', '1')                  # worker, and the kernels and subprocesses it starts, computes
        mp.setenv('MKL_NUM_THREADS', '1')                  # on one thread, so that the workers do not compete for cores
        import torch
        torch.set_num_threads(1)
    yield
    mp.undo()


# Tests that start Jupyter kernels (papermill) run one at a time: two kernels executing at once can stall a cell with
# widget traffic until its execution timeout (nbclient issue #312). Under `make test` (pytest-xdist, --dist loadgroup)
# they all go to one worker, one after another, while the other workers run the in-process tests. The two-process DDP
# test joins them: its processes rendezvous and exit on timing, and it failed once (a SIGABRT at exit) beside them.
SERIAL_MODULES = {'test_notebooks.py', 'test_reproduce.py', 'test_reproducibility.py', 'test_multiprocess.py'}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker('notebook') or item.path.name in SERIAL_MODULES:
            item.add_marker(pytest.mark.xdist_group('serial'))
