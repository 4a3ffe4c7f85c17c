"""The one training loop runs data-parallel through accelerate: two CPU processes (gloo) end with identical weights,
and their global-batch loss matches a single-process run with the same global batch."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent


@pytest.mark.timeout(300)
def test_two_processes_match_single_process(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(HERE.parent) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29613',
           str(HERE / 'ddp_fit_script.py'), str(tmp_path)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    done = sorted(f.name for f in tmp_path.glob('rank*.done'))
    assert p.returncode == 0, f'ranks that finished their work: {done}\n' + p.stdout[-3000:] + p.stderr[-3000:]
    assert done == ['rank0.done', 'rank1.done'], done
    w0, w1 = load_file(tmp_path / 'rank0.safetensors'), load_file(tmp_path / 'rank1.safetensors')
    assert json.loads((tmp_path / 'rank0.json').read_text())['world'] == 2
    for k in w0: assert torch.equal(w0[k], w1[k]), f'processes disagree on {k}'

    sys.path.insert(0, str(HERE))
    import ddp_fit_script as s
    from invdiff_nb.train import fit
    single = fit(s.model(), s.mse, s.get_batch, s.CFG, device='cpu', progress=False)
    multi_losses = json.loads((tmp_path / 'rank0.json').read_text())['losses']
    assert len(multi_losses) == len(single.losses) == s.CFG.steps
    assert max(abs(a - b) for a, b in zip(multi_losses, single.losses)) < 1e-5
    for k, v in single.model.state_dict().items(): assert torch.allclose(v, w0[k], atol=1e-5), k
