"""Every module of invdiff_nb imports in a fresh process started in an unrelated folder.

Catches exported code that depends on notebook globals or on the working directory. Modules are discovered
from the files, so later notebooks' modules are covered automatically."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ['invdiff_nb'] + sorted(f'invdiff_nb.{p.stem}' for p in (ROOT / 'invdiff_nb').glob('*.py') if p.stem != '__init__')


@pytest.mark.parametrize('module', MODULES)
def test_fresh_process_import(module, tmp_path):
    code = f'import {module} as m, invdiff_nb; print(invdiff_nb.__file__)'
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])})
    assert r.returncode == 0, f'import {module} failed in a fresh process:\n{r.stderr[-3000:]}'
    assert Path(r.stdout.strip()).resolve().is_relative_to(ROOT), f'imported {r.stdout.strip()}, not this checkout'
    assert not list(tmp_path.iterdir()), f'import {module} wrote files into the working directory'


def test_public_api_from_the_package(tmp_path):
    "`from invdiff_nb import ...` gives the re-exported public API in a fresh process, and `__all__` lists only real names."
    code = ('from invdiff_nb import GaussianScheduler, SchedulerConfig, UNet, UNetConfig, fit, TrainConfig, sample, CFGModel\n'
            'import invdiff_nb, invdiff_nb.ddpm as d\n'
            'assert GaussianScheduler is d.GaussianScheduler and invdiff_nb.__version__\n'
            'missing = [n for n in invdiff_nb.__all__ if not hasattr(invdiff_nb, n)]\n'
            'assert not missing, missing\n'
            'print(len(invdiff_nb.__all__))')
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])})
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip()) >= 30
