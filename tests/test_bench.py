"""The benchmark command line and the one-call GPU check: a tiny run writes bench.json; the GPU check's dry run executes
the same notebooks on the CPU and publishes them; bad input is refused with a clear message."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd, timeout=600, **env_extra):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **env_extra}
    return subprocess.run([sys.executable, '-m', 'invdiff_nb.bench', *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(600)
def test_smoke_bench_writes_json(tmp_path):
    p = run(['--profile', 'smoke', '--device', 'cpu', '--out', str(tmp_path / 'bench.json')], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / 'bench.json').read_text())
    for k in ('plain_img_per_s', 'ours_img_per_s', 'speedup', 'train_step_tflop', 'sample_ddpm4_seconds', 'sample_ddim2_seconds',
              'sample_dpmpp2_seconds', 'sample_dpmpp3_seconds', 'lever_optimizer_gain', 'lever_ema_gain', 'lever_shards_gain',
              'plain_ms_convolution_backward', 'ours_ms_attention'):
        assert res[k] > 0, k
    assert res['speedup'] == pytest.approx(res['ours_img_per_s'] / res['plain_img_per_s'])
    assert '| lever |' in res['_tables']['levers'] and 'speed-up of our path' in p.stdout


@pytest.mark.parametrize('args,msg', [(['--profile', 'huge'], "unknown profile 'huge'"),
                                      (['--profile', 'smoke', '--preset', 'giant'], "unknown UNet preset 'giant'"),
                                      (['--profile', 'smoke', '--batch-size', '0'], 'batch_size must be an int >= 1')])
def test_bad_input(tmp_path, args, msg):
    p = run(args + ['--out', str(tmp_path / 'b.json')], tmp_path)
    assert p.returncode == 2 and msg in p.stderr
    assert not (tmp_path / 'b.json').exists()


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_gpu_check_dry_run_runs_and_publishes(tmp_path):
    p = run(['--gpu-check', '--dry-run', '--invdiff-profile', 'no_such_profile', '--reports', str(tmp_path / 'reports'),
             '--runs', str(tmp_path / 'runs')], ROOT, timeout=1100,
            INVDIFF_CACHE=str(tmp_path / 'cache'))     # its own cache: a model it caches would be loaded by 15's smoke test
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    dest = tmp_path / 'reports' / 'gpu'
    summary = json.loads((dest / 'gpu_check.json').read_text())
    assert summary['ok'] and summary['dry_run'] and set(summary['parts']) == {'60_bench', '15_ddpm_digits'}
    for name in ('60_bench', '15_ddpm_digits'):
        assert json.loads((dest / name / 'results.json').read_text())['profile'] == 'smoke'
    assert (dest / 'report.md').exists() and 'no profile' in p.stdout
    assert not list(ROOT.glob('runs/gpu-check-dry-run'))                 # nothing written into the checkout


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU')
def test_gpu_check_refuses_without_gpu(tmp_path):
    p = run(['--gpu-check', '--reports', str(tmp_path / 'r'), '--runs', str(tmp_path / 'runs')], ROOT)
    assert p.returncode == 2 and 'needs a CUDA GPU' in p.stderr and not (tmp_path / 'r').exists()
