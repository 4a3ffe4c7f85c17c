"""The console script `invdiff-debias` on a tiny ImageFolder fixture and a tiny diffusers model folder (no download)."""
import dataclasses, json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from invdiff_nb.invdiff import InvDiffConfig
from invdiff_nb.invdiff_cli import read_image_folder, load_model, main


@pytest.fixture(scope='module')
def fixture(tmp_path_factory):
    "An image folder (two classes, 12 images each, one with 'water' backgrounds mostly) and a saved DDIM pipeline."
    from diffusers import UNet2DModel, DDIMScheduler, DDIMPipeline
    root = tmp_path_factory.mktemp('cli')
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(['landbird', 'waterbird']):
        (root / 'data' / name).mkdir(parents=True)
        for i in range(12):
            a = (torch.rand(16, 16, 3, generator=g) * 60 + (150 if (i < 10) == (c == 1) else 40)).byte().numpy()
            Image.fromarray(a).save(root / 'data' / name / f'{i:02d}.png')
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                       down_block_types=('DownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'UpBlock2D'),
                       norm_num_groups=8, num_class_embeds=3)
    sched = DDIMScheduler(num_train_timesteps=50, prediction_type='v_prediction', rescale_betas_zero_snr=True, timestep_spacing='trailing')
    DDIMPipeline(unet=unet, scheduler=sched).save_pretrained(root / 'model')
    return root


ARGS = ['--steps', '3', '--batch-size', '8', '--signal-timesteps', '3', '--num-inference-steps', '3', '--samples-per-class', '2', '--no-progress']


def test_cli_writes_module_report_and_grids(fixture, tmp_path):
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'invdiff_nb.invdiff_cli', '--model', str(fixture / 'model'), '--data', str(fixture / 'data'),
           '--out', str(out), *ARGS]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    assert {'module', 'report.json', 'report.md', 'samples_before.png', 'samples_after.png'} <= {p.name for p in out.iterdir()}
    rep = json.loads((out / 'report.json').read_text())
    assert rep['classes'] == ['landbird', 'waterbird'] and rep['num_images'] == 24 and rep['null_class'] == 2
    assert len(rep['groups']) == 4 and sum(g['mass'] for g in rep['groups']) == pytest.approx(24)
    assert {p.name for p in (out / 'module').iterdir()} == {'invdiff_config.json', 'module.safetensors', 'groups.safetensors'}
    assert 'group' in (out / 'report.md').read_text()


def test_cli_help_documents_every_flag():
    r = subprocess.run([sys.executable, '-m', 'invdiff_nb.invdiff_cli', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for f in dataclasses.fields(InvDiffConfig): assert f'--{f.name.replace("_", "-")}' in r.stdout, f.name
    for flag in ('--model', '--data', '--out', '--null-class', '--device'): assert flag in r.stdout


def test_console_script_is_installed():
    "The console script exists once the package is installed (pip install -e . in make test)."
    exe = shutil.which('invdiff-debias') or str(Path(sys.executable).parent / 'invdiff-debias')
    if not Path(exe).exists(): pytest.skip('package not installed with its console scripts in this environment')
    assert subprocess.run([exe, '--help'], capture_output=True, timeout=120).returncode == 0


def test_cli_bad_input_is_a_clear_error(fixture, tmp_path, capsys):
    one = tmp_path / 'one'; (one / 'only').mkdir(parents=True)
    Image.new('RGB', (16, 16)).save(one / 'only' / 'a.png')
    assert main(['--model', str(fixture / 'model'), '--data', str(one), '--out', str(tmp_path / 'o'), *ARGS]) == 2
    assert 'at least 2 classes' in capsys.readouterr().err
    assert main(['--model', str(tmp_path), '--data', str(fixture / 'data'), '--out', str(tmp_path / 'o'), *ARGS]) == 2
    assert 'not a diffusers model folder' in capsys.readouterr().err
    assert main(['--model', str(fixture / 'model'), '--data', str(fixture / 'data'), '--out', str(tmp_path / 'o'), '--r', '0', *ARGS]) == 2
    assert 'r must be' in capsys.readouterr().err
    with pytest.raises(SystemExit):                           # a yes/no flag with another word: argparse refuses it
        main(['--model', str(fixture / 'model'), '--data', str(fixture / 'data'), '--out', str(tmp_path / 'o'), '--shared-noise', 'maybe', *ARGS])
    assert "'maybe' is not a yes/no value" in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()                       # nothing written half-way
    bad = tmp_path / 'bad'; shutil.copytree(fixture / 'data', bad); (bad / 'waterbird' / 'x.png').write_bytes(b'oops')
    with pytest.raises(ValueError, match='unreadable'): read_image_folder(bad, 16)
    with pytest.raises(ValueError, match='other conditions'): load_model(fixture / 'model', 3)
