"""The benchmark command line: a tiny run writes bench.json; bad input is refused with a clear message."""
import json, os, subprocess, sys

import pytest


def run(args, cwd):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-m', 'invdiff_nb.bench', *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_smoke_bench_writes_json(tmp_path):
    p = run(['--profile', 'smoke', '--device', 'cpu', '--out', str(tmp_path / 'bench.json')], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / 'bench.json').read_text())
    for k in ('plain_img_per_s', 'ours_img_per_s', 'speedup', 'train_step_tflop', 'sample_ddpm4_seconds', 'sample_ddim2_seconds'):
        assert res[k] > 0, k
    assert 'speed-up of our path' in p.stdout


@pytest.mark.parametrize('args,msg', [(['--profile', 'huge'], "unknown profile 'huge'"),
                                      (['--profile', 'smoke', '--preset', 'giant'], "unknown UNet preset 'giant'"),
                                      (['--profile', 'smoke', '--batch-size', '0'], 'batch_size must be >= 1')])
def test_bad_input(tmp_path, args, msg):
    p = run(args + ['--out', str(tmp_path / 'b.json')], tmp_path)
    assert p.returncode == 2 and msg in p.stderr
    assert not (tmp_path / 'b.json').exists()
