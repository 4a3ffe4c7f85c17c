"""papermill executes every notebook in nbs/ under the smoke profile, one test per notebook.

Serial on purpose (no xdist): notebooks with widgets can stall when kernels run concurrently (REFERENCE.md).
An execution timeout per cell is always set, and pytest-timeout is the backstop."""
import json
from pathlib import Path

import papermill as pm
import pytest

from invdiff_nb.core import get_profile
from invdiff_nb.reproduce import list_notebooks, read_executed

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list_notebooks(ROOT / 'nbs')
SMOKE = get_profile('smoke')


@pytest.mark.notebook
@pytest.mark.timeout(2 * SMOKE.notebook_timeout)
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_smoke(nb, tmp_path):
    out_dir, executed = tmp_path / nb.stem, tmp_path / f'{nb.stem}.ipynb'
    out_dir.mkdir()
    try:
        pm.execute_notebook(str(nb), str(executed), parameters={'profile': 'smoke', 'seed': 0, 'out_dir': str(out_dir)},
                            kernel_name='python3', language='python', execution_timeout=SMOKE.notebook_timeout,
                            progress_bar=False, cwd=str(nb.parent))
    except pm.PapermillExecutionError:
        pytest.fail(read_executed(executed).message, pytrace=False)
    assert read_executed(executed).status == 'ok'
    results = out_dir / 'results.json'
    assert results.exists(), f'{nb.name} wrote no results.json into out_dir: call write_results(out_dir, ...)'
    res = json.loads(results.read_text())
    assert res['profile'] == 'smoke' and res['seed'] == 0, f'{nb.name}: results.json has {res}'
