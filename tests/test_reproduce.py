"""The reproduce command: bad command lines, a real smoke run of 00_core, a failing and a hanging notebook,
--report-only, --publish, the recursion guard and the README generator. Everything runs in temporary folders."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from invdiff_nb.reproduce import (DEPTH_ENV, check_readme, collect_run, main, readme_text, reference_results,
                                  run_notebook, write_readme)

ROOT = Path(__file__).resolve().parents[1]


def tiny_notebook(path, *sources, first=''):
    "A notebook: optional first cell, a papermill parameters cell, then code cells `sources`."
    params = nbformat.v4.new_code_cell('profile = "cpu"\nseed = 0\nout_dir = "."', metadata={'tags': ['parameters']})
    cells = ([nbformat.v4.new_code_cell(first)] if first else []) + [params, *map(nbformat.v4.new_code_cell, sources)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata['kernelspec'] = {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_unknown_profile_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e: main(['--profile', 'fast', '--nbs', str(ROOT / 'nbs')])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "invalid choice: 'fast'" in err and 'smoke' in err and 'gpu' in err


def test_unknown_notebook_lists_the_available_ones(capsys, tmp_path):
    assert main(['--only', 'no_such_nb', '--nbs', str(ROOT / 'nbs'), '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no notebook matches ['no_such_nb']" in err and '00_core' in err
    assert not list(tmp_path.iterdir())


def test_missing_notebook_folder(capsys, tmp_path, monkeypatch):
    assert main(['--nbs', str(tmp_path / 'missing'), '--out', str(tmp_path)]) == 2
    assert 'does not exist' in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)   # no project here or above: the default lookup fails clearly too
    assert main(['--report-only']) == 2
    assert 'pass --nbs DIR' in capsys.readouterr().err


@pytest.fixture(scope='module')
def core_run(tmp_path_factory):
    "`python -m invdiff_nb.reproduce --only 00_core --profile smoke` in a fresh process, from an unrelated folder."
    tmp = tmp_path_factory.mktemp('repro')
    cmd = [sys.executable, '-m', 'invdiff_nb.reproduce', '--profile', 'smoke', '--only', '00_core',
           '--nbs', str(ROOT / 'nbs'), '--out', str(tmp / 'runs'), '--no-progress']
    r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    return tmp, r


@pytest.mark.slow
def test_smoke_run_of_00_core(core_run):
    tmp, r = core_run
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = tmp / 'runs' / 'smoke'
    report = (run_dir / 'report.md').read_text()
    results = json.loads((run_dir / '00_core' / 'results.json').read_text())
    assert '| 00_core | ok |' in report and f"checkpoint_bytes = {results['checkpoint_bytes']}" in report
    assert results['profile'] == 'smoke' and (run_dir / '00_core' / '00_core.ipynb').exists()
    assert '00_core/curves_demo.png' in report and '- profile: `smoke`' in report and 'torch:' in report
    html = (run_dir / 'report.html').read_text()
    assert html.startswith('<!doctype html>') and '<img src="00_core/curves_demo.png"' in html


@pytest.mark.slow
def test_report_only_and_publish(core_run, capsys):
    tmp, r = core_run
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = tmp / 'runs' / 'smoke'
    (run_dir / 'report.md').unlink()
    rc = main(['--profile', 'smoke', '--report-only', '--publish', '--nbs', str(ROOT / 'nbs'), '--out', str(tmp / 'runs'),
               '--reports', str(tmp / 'reports')])
    assert rc == 0, capsys.readouterr().err
    report = (run_dir / 'report.md').read_text()
    assert '| 00_core | ok |' in report and '| 90_reproduce | not run |' in report
    pub = tmp / 'reports' / 'smoke'
    files = sorted(p.relative_to(pub).as_posix() for p in pub.rglob('*') if p.is_file())
    assert files == ['00_core/curves_demo.png', '00_core/results.json', 'report.html', 'report.md']
    ref = reference_results(tmp / 'reports')
    assert '### Profile `smoke`' in ref and '| 00_core | ok |' in ref


def test_failing_notebook_is_named_with_cell_and_executed_copy(tmp_path, capsys):
    nbs = tmp_path / 'nbs'
    tiny_notebook(nbs / '01_fails.ipynb', 'x = 1', 'y = x / 0', 'print("never")')
    tiny_notebook(nbs / '02_ok.ipynb', 'import json, pathlib\npathlib.Path(out_dir, "results.json").write_text(json.dumps({"v": 7}))')
    rc = main(['--profile', 'smoke', '--nbs', str(nbs), '--out', str(tmp_path / 'runs'), '--no-progress'])
    err = capsys.readouterr().err
    executed = (tmp_path / 'runs' / 'smoke' / '01_fails' / '01_fails.ipynb').resolve()
    assert rc == 1
    assert '01_fails: FAILED cell 2' in err and 'ZeroDivisionError' in err and str(executed) in err and executed.exists()
    report = (tmp_path / 'runs' / 'smoke' / 'report.md').read_text()
    assert '| 01_fails | failed |' in report and '| 02_ok | ok |' in report and 'v = 7' in report, 'the run must go on'


def _dead(pid):
    import psutil
    try: return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess: return True


@pytest.mark.slow
def test_wall_clock_timeout_kills_the_kernel(tmp_path):
    nb = tiny_notebook(tmp_path / 'nbs' / '01_hangs.ipynb',
                       'import os, pathlib, time\npathlib.Path(out_dir, "pid").write_text(str(os.getpid()))', 'time.sleep(600)')
    t0 = time.time()
    run = run_notebook(nb, tmp_path / 'out', 'smoke', timeout=15)
    assert time.time() - t0 < 60 and run.status == 'timeout' and 'wall-clock limit of 15 s' in run.error
    pid = int((tmp_path / 'out' / 'pid').read_text())
    deadline = time.time() + 10
    while not _dead(pid) and time.time() < deadline: time.sleep(0.2)
    assert _dead(pid), 'the kernel outlived the timeout'
    assert collect_run(tmp_path / 'out').status == 'timeout'


def test_reproduce_does_not_recurse(tmp_path, monkeypatch):
    nb = tiny_notebook(tmp_path / 'nbs' / '90_reproduce.ipynb', 'raise SystemExit("must not run")', first='#| default_exp reproduce')
    monkeypatch.setenv(DEPTH_ENV, '1')
    run = run_notebook(nb, tmp_path / 'out', 'smoke')
    assert run.status == 'skipped' and collect_run(tmp_path / 'out', '90_reproduce').status == 'skipped'


def test_report_reads_a_plain_papermill_folder(tmp_path):
    "Runs made by hand with papermill (no reproduce.json) are read from the executed notebook."
    import papermill as pm
    nb = tiny_notebook(tmp_path / 'nbs' / '05_x.ipynb', 'z = 2')
    out = tmp_path / 'runs' / 'cpu' / '05_x'; out.mkdir(parents=True)
    pm.execute_notebook(str(nb), str(out / '05_x.ipynb'), kernel_name='python3', progress_bar=False, execution_timeout=120)
    (out / 'results.json').write_text(json.dumps({'z': 2, 'profile': 'cpu'}))
    assert main(['--profile', 'cpu', '--report-only', '--nbs', str(tmp_path / 'nbs'), '--out', str(tmp_path / 'runs')]) == 0
    report = (tmp_path / 'runs' / 'cpu' / 'report.md').read_text()
    assert '| 05_x | ok |' in report and 'z = 2' in report


def test_readme_generation(tmp_path):
    (tmp_path / 'nbs').mkdir()
    shutil.copy(ROOT / 'nbs' / 'index.ipynb', tmp_path / 'nbs' / 'index.ipynb')
    assert not check_readme(tmp_path)
    write_readme(tmp_path)
    text = (tmp_path / 'README.md').read_text()
    assert check_readme(tmp_path) and 'make reproduce' in text and 'make test' in text
    assert 'out_dir =' not in text and '#|' not in text and 'No reference results are published yet' in text
    rep = tmp_path / 'reports' / 'cpu'; rep.mkdir(parents=True)
    (rep / 'report.md').write_text('# r\n<!-- summary:start -->\n| notebook | status |\n|---|---|\n| 10_x | ok |\n'
                                   '<!-- summary:end -->\n## Run\n\n- profile: `cpu`\n- torch: 9\n')
    assert not check_readme(tmp_path), 'a new published report must make the README stale'
    assert '| 10_x | ok |' in readme_text(tmp_path) and 'torch: 9' in readme_text(tmp_path)
    with pytest.raises(FileNotFoundError, match='index.ipynb does not exist'): readme_text(tmp_path / 'nothing')


def _index_notebook(path, *stems):
    "An index.ipynb whose course map lists `stems` (as nbs/index.ipynb does)."
    rows = '\n'.join(f'| `{s}` | `mod{k}` | content of {s} |' for k, s in enumerate(stems))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell('# tiny course\n\n## Course map\n\n| notebook | module | content |\n|---|---|---|\n' + rows + '\n\nafter the table'),
        nbformat.v4.new_code_cell('profile = "cpu"\nseed = 0\nout_dir = "."', metadata={'tags': ['parameters']}),
        nbformat.v4.new_code_cell('print("the README notebook")')])
    nb.metadata['kernelspec'] = {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'}
    nbformat.write(nb, path)


def test_docs_site_from_a_small_run(tmp_path, capsys):
    "`--docs` renders every executed notebook, with the course map as index and prev/next links; every link resolves, also once published."
    from invdiff_nb.reproduce import SITE_DIR, build_site, check_site, course_map
    nbs = tmp_path / 'nbs'
    gif = ('import io, base64\nfrom PIL import Image as PI\nfrom IPython.display import Image, display\n'
           'frames = [PI.new("RGB", (8, 8), c) for c in ("red", "blue")]\np = pathlib.Path(out_dir) / "anim.gif"\n'
           'frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)\ndisplay(Image(filename=str(p)))')
    tiny_notebook(nbs / '00_a.ipynb', '#| hide\nimport json, pathlib\nimport matplotlib.pyplot as plt',
                  '#| export\ndef f(x): return 2 * x', 'fig = plt.figure(); plt.plot([0, 1]); plt.savefig(pathlib.Path(out_dir) / "line.png"); plt.show()',
                  gif, 'pathlib.Path(out_dir, "results.json").write_text(json.dumps({"v": f(2)}))')
    tiny_notebook(nbs / '01_b.ipynb', 'from IPython.display import Markdown\nMarkdown("$x_t = \\\\sqrt{\\\\bar\\\\alpha_t}\\\\,x_0$")')
    tiny_notebook(nbs / '05_extra.ipynb', 'print("not in the course map")')
    _index_notebook(nbs / 'index.ipynb', '00_a', '01_b', '02_not_run')
    assert [r['notebook'] for r in course_map(nbs / 'index.ipynb')] == ['00_a', '01_b', '02_not_run']
    runs = tmp_path / 'runs'
    rc = main(['--profile', 'smoke', '--nbs', str(nbs), '--out', str(runs), '--no-progress', '--docs'])
    out = capsys.readouterr()
    assert rc == 0, out.err
    site = runs / 'smoke' / SITE_DIR
    assert 'every link resolves' in out.out and check_site(site) == []
    pages = sorted(p.name for p in site.glob('*.html'))
    assert pages == ['00_a.html', '01_b.html', '05_extra.html', 'index.html', 'readme.html']
    index = (site / 'index.html').read_text()
    assert index.index('href="00_a.html"') < index.index('href="01_b.html"') < index.index('href="05_extra.html"')
    assert '02_not_run <span class="note">(not in this run)</span>' in index and 'href="../report.html"' in index
    a, b, extra = ((site / p).read_text() for p in ('00_a.html', '01_b.html', '05_extra.html'))
    assert 'href="01_b.html"' in a and 'href="00_a.html"' in b and 'href="05_extra.html"' in b and 'href="01_b.html"' in extra
    assert '#| hide' not in a and 'import json' not in a and '#| export' not in a and 'def' in a       # hidden cells and directives
    assert 'out_dir' not in a.split('</nav>')[1].split('<div')[0] and 'injected-parameters' not in a
    assert 'href="../00_a/results.json"' in a and 'href="../00_a/line.png"' in a and 'src="../00_a/anim.gif"' in a
    assert list((site / '00_a_files').glob('*.png')) and not list(site.rglob('*.gif'))     # inline PNG extracted; the GIF not copied
    assert '\\bar' in b and 'mathjax' in b.lower()                                          # LaTeX left for MathJax
    # published: same layout, same links, within the size limit; a limit it exceeds is refused
    assert main(['--profile', 'smoke', '--report-only', '--publish', '--nbs', str(nbs), '--out', str(runs),
                 '--reports', str(tmp_path / 'reports')]) == 0
    pub = tmp_path / 'reports' / 'smoke'
    assert check_site(pub / SITE_DIR) == [] and (pub / '00_a' / 'anim.gif').exists() and not list(pub.rglob('*.ipynb'))
    assert main(['--profile', 'smoke', '--report-only', '--publish', '--max-publish-mb', '0.001', '--nbs', str(nbs),
                 '--out', str(runs), '--reports', str(tmp_path / 'reports2')]) == 1
    assert 'more than 0.001 MB' in capsys.readouterr().err and not (tmp_path / 'reports2').exists()
    # a broken link is found; no executed notebooks is a clear error
    (site / '00_a_files').rename(site / 'elsewhere')
    assert any(x.startswith('00_a.html: 00_a_files/') for x in check_site(site))
    with pytest.raises(FileNotFoundError, match='make reproduce PROFILE=cpu'): build_site(tmp_path / 'empty', nbs, profile='cpu')


def test_shrink_png_keeps_the_picture():
    import io
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image
    from invdiff_nb.reproduce import shrink_png
    fig, ax = plt.subplots(); ax.plot(np.sin(np.linspace(0, 6, 100))); ax.imshow(np.random.default_rng(0).random((8, 8)), extent=(0, 20, -1, 1))
    buf = io.BytesIO(); fig.savefig(buf, format='png', dpi=80); plt.close(fig)
    small = shrink_png(buf.getvalue())
    a, b = (np.asarray(Image.open(io.BytesIO(x)).convert('RGBA').convert('RGB'), dtype=float) for x in (buf.getvalue(), small))
    assert len(small) < len(buf.getvalue()) and a.shape == b.shape and np.abs(a - b).mean() < 2.0   # out of 255
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')                   # a shrunk (palette + transparency) PNG shrinks again silently
        again = shrink_png(small)
    assert not caught, [str(w.message) for w in caught]
    c = np.asarray(Image.open(io.BytesIO(again)).convert('RGBA').convert('RGB'), dtype=float)
    assert len(again) <= len(small) and np.abs(b - c).mean() < 1.0
    assert shrink_png(b'not a png') == b'not a png'
