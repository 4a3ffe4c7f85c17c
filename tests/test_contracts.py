"""Project contracts: one literal `parameters` cell per notebook; the library and the notebooks are in sync
(nbdev_export and nbdev_clean on a temporary copy change nothing); environment.yml lists what settings.ini
requires; README.md is what index.ipynb and reports/ generate."""
import ast
import collections
import json
import re
import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import nbformat
import pytest

from invdiff_nb.core import PROFILES
from invdiff_nb.reproduce import check_readme, list_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list_notebooks(ROOT / 'nbs')
IDS = [p.stem for p in NOTEBOOKS]


def _settings():
    p = ConfigParser(delimiters=['='])
    p.read(ROOT / 'settings.ini', encoding='utf-8')
    return p['DEFAULT']


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=IDS)
def test_cell_ids_are_unique(nb):
    "nbformat silently renames a repeated cell id each time it reads the notebook, so a repeat never stays fixed."
    ids = collections.Counter(c.get('id') for c in json.loads(nb.read_text(encoding='utf-8'))['cells'])
    repeated = sorted(k for k, v in ids.items() if v > 1)
    assert not repeated, f'{nb.name} repeats the cell ids {repeated}: give each cell its own id'


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=IDS)
def test_one_literal_parameters_cell(nb):
    cells = [c for c in nbformat.read(nb, as_version=4).cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(cells) == 1, f'{nb.name} has {len(cells)} cells tagged "parameters": papermill needs exactly one'
    assert cells[0].cell_type == 'code', f'the parameters cell of {nb.name} must be a code cell'
    values = {}
    for st in ast.parse(cells[0].source).body:
        ok = isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)
        assert ok, f'{nb.name}: the parameters cell may hold only `name = literal` lines, found {ast.unparse(st)!r}'
        try: values[st.targets[0].id] = ast.literal_eval(st.value)
        except ValueError: pytest.fail(f'{nb.name}: parameter {st.targets[0].id} is not a literal: {ast.unparse(st.value)!r}')
    missing = {'profile', 'seed', 'out_dir'} - set(values)
    assert not missing, f'{nb.name}: the parameters cell lacks {sorted(missing)}'
    assert values['profile'] in PROFILES and isinstance(values['seed'], int), f'{nb.name}: {values}'
    assert values['out_dir'] == f'runs/{values["profile"]}/{nb.stem}', f'{nb.name}: out_dir should be "runs/{values["profile"]}/{nb.stem}"'


def _nbdev(cmd, cwd):
    exe = Path(sys.executable).parent / cmd
    exe = str(exe) if exe.exists() else shutil.which(cmd)
    assert exe, f'{cmd} not found: install the dev requirements (pip install -e ".[dev]")'
    r = subprocess.run([exe], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f'{cmd} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}'


def _snapshot(folder, pattern):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob(pattern)
            if '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}


def _copy_project(dst):
    shutil.copy(ROOT / 'settings.ini', dst / 'settings.ini')
    ignore = shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints', 'runs')
    shutil.copytree(ROOT / 'nbs', dst / 'nbs', ignore=ignore)
    shutil.copytree(ROOT / 'invdiff_nb', dst / 'invdiff_nb', ignore=ignore)


def _changed(before, after):
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_nbdev_export_changes_nothing(tmp_path):
    _copy_project(tmp_path)
    before = _snapshot(tmp_path / 'invdiff_nb', '*.py')
    _nbdev('nbdev_export', tmp_path)
    changed = _changed(before, _snapshot(tmp_path / 'invdiff_nb', '*.py'))
    assert not changed, f'nbdev_export would change {changed}: run `make export` and commit the result'


def test_nbdev_clean_changes_no_notebook(tmp_path):
    _copy_project(tmp_path)
    before = _snapshot(tmp_path / 'nbs', '*.ipynb')
    _nbdev('nbdev_clean', tmp_path)
    changed = _changed(before, _snapshot(tmp_path / 'nbs', '*.ipynb'))
    assert not changed, f'nbdev_clean would change {changed}: run `make clean-nbs` (or `make export`) and commit'


def _name(req):
    return re.split(r'[<>=!~\[;@ ]', req.strip(), maxsplit=1)[0].lower().replace('_', '-')


def test_environment_yml_lists_every_requirement():
    cfg = _settings()
    required = {_name(r) for r in (cfg.get('requirements', '') + ' ' + cfg.get('dev_requirements', '')).split()}
    listed = {_name(m.group(1)) for m in re.finditer(r'^\s*-\s+([A-Za-z0-9_.\-]+)', (ROOT / 'environment.yml').read_text(), re.M)}
    missing = sorted(required - listed)
    assert not missing, f'settings.ini requires {missing} but environment.yml does not list them: add them there'


def test_readme_is_current():
    assert check_readme(ROOT), 'README.md is not what nbs/index.ipynb and reports/ generate: run `make readme` and commit'


def test_bad_input_table_names_real_tests():
    "tests/README.md lists >= 80 bad inputs, each with its error, message pattern and an existing test."
    rows = [l for l in (ROOT / 'tests' / 'README.md').read_text().splitlines() if re.match(r'^\| \d+ \|', l)]
    assert len(rows) >= 80, f'the bad-input table has {len(rows)} rows: regenerate it with python tests/bad_inputs_table.py'
    for row in rows:
        m = re.search(r'`(test_\w+)\.py::(test_\w+)`', row)
        assert m, f'row without a test: {row}'
        f = ROOT / 'tests' / f'{m.group(1)}.py'
        assert f.exists() and f'def {m.group(2)}(' in f.read_text(), f'{m.group(1)}.py has no {m.group(2)}: regenerate the table'
