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
    yield
    mp.undo()
