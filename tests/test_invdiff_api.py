"""The one-import InvDiff API (issue 14): the user story in a fresh process on diffusers models loaded from a folder,
save/load, the diffusers drop-in, the controls, training that must move the module and the group risks, bad inputs."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

from invdiff_nb.invdiff import (CONTROLS, GroupInference, InvDiff, InvDiffConfig, fit_control, make_module, condition_ids)
from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig
from invdiff_nb.models import UNet, UNetConfig, count_params

STORY = r'''
import sys, tempfile, torch
from pathlib import Path
from diffusers import DDPMScheduler, UNet2DModel, UNet2DConditionModel
from invdiff_nb import InvDiff, InvDiffConfig
kind, tmp = sys.argv[1], Path(sys.argv[2])
torch.manual_seed(0)
kw = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64), norm_num_groups=4)
if kind == 'class':
    UNet2DModel(**kw, num_class_embeds=3, down_block_types=('DownBlock2D', 'DownBlock2D'),
                up_block_types=('UpBlock2D', 'UpBlock2D')).save_pretrained(tmp / 'base')
    base = UNet2DModel.from_pretrained(tmp / 'base')
    x = torch.randn(24, 3, 8, 8).clamp(-1, 1); cond = torch.arange(24) % 2; null = None; test_cond = torch.tensor([0, 1])
else:
    UNet2DConditionModel(**kw, cross_attention_dim=8, attention_head_dim=2, down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
                         up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D')).save_pretrained(tmp / 'base')
    base = UNet2DConditionModel.from_pretrained(tmp / 'base')
    prompts = torch.randn(2, 4, 8); x = torch.randn(24, 3, 8, 8).clamp(-1, 1); cond = prompts[torch.arange(24) % 2]
    null = torch.zeros(4, 8); test_cond = prompts
scheduler = DDPMScheduler(num_train_timesteps=50, prediction_type='v_prediction', rescale_betas_zero_snr=True)
before = {k: v.clone() for k, v in base.state_dict().items()}
deb = InvDiff(base, scheduler, InvDiffConfig(steps=3, batch_size=8, signal_timesteps=3, num_inference_steps=3), null_cond=null)
groups = deb.infer_groups(x, cond)
assert {'cond', 'uncond'} <= set(groups.losses) and torch.equal(groups.losses['cond'], deb.losses(x, cond)), 'stage 1 kept other losses'
assert torch.equal(deb.infer_groups(x, cond, losses=groups.losses).W, groups.W), 'regrouping the kept losses gave other groups'
deb.fit(x, cond, groups)
x_gen = deb.sample(test_cond, w=2.0)
deb.save_pretrained(tmp / 'module')
deb2 = InvDiff.from_pretrained(tmp / 'module', base, scheduler, null_cond=null)
unet = deb.as_diffusers_unet()
t = torch.tensor([1, 30])
with torch.no_grad():
    a = deb.model(x[:2], t, cond[:2]); b = deb2.model(x[:2], t, cond[:2])
    u = unet(x[:2], t, encoder_hidden_states=cond[:2]) if kind == 'text' else unet(x[:2], t, class_labels=cond[:2])
assert torch.equal(a, b) and torch.equal(a, u.sample), 'save/load or the diffusers drop-in changed the output'
assert torch.equal(deb.sample(test_cond, w=2.0), deb2.sample(test_cond, w=2.0)), 'the loaded model samples differently'
assert all(torch.equal(before[k], v) for k, v in base.state_dict().items()), 'the base changed'
assert groups.W.shape == (24, 4) and x_gen.shape == (2, 3, 8, 8) and torch.isfinite(x_gen).all()
assert not any(p.endswith('.bin') or p.startswith('base') for p in map(str, (tmp / 'module').iterdir()))
print('ok', sorted(p.name for p in (tmp / 'module').iterdir()))
'''


@pytest.mark.parametrize('kind', ['class', 'text'])
def test_user_story_in_a_fresh_process(kind, tmp_path):
    "The README's story on a tiny diffusers UNet2DModel (class labels) and UNet2DConditionModel (text), from saved folders."
    r = subprocess.run([sys.executable, '-c', STORY, kind, str(tmp_path)], capture_output=True, text=True, timeout=600,
                       cwd=tmp_path, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith('ok') and 'module.safetensors' in r.stdout and 'groups.safetensors' in r.stdout


def _toy(T=50):
    "An untrained base (our UNet: zero output layer, so it predicts 0) and two groups of very different brightness."
    base = UNet(UNetConfig(in_channels=1, image_size=8, base_channels=32, channel_mults=(1, 2), attn_resolutions=(), dropout=0.0,
                           num_classes=1, num_train_timesteps=T))
    sched = GaussianScheduler(SchedulerConfig(num_train_timesteps=T, prediction_type='v_prediction', rescale_betas_zero_snr=True))
    g = torch.Generator().manual_seed(7)
    x = torch.cat([0.9 * torch.ones(16, 1, 8, 8), 0.1 * torch.randn(16, 1, 8, 8, generator=g)]).clamp(-1, 1)
    y, grp = torch.zeros(32, dtype=torch.long), torch.cat([torch.zeros(16), torch.ones(16)]).long()
    return base, sched, x, y, torch.nn.functional.one_hot(grp, 2).float()


def test_training_moves_the_module_and_the_group_risks():
    "Fails if the optimiser does nothing: the module's weights must change and the spread of the group risks must fall."
    base, sched, x, y, W = _toy()
    deb = InvDiff(base, sched, InvDiffConfig(steps=40, batch_size=16, lr=3e-3, signal_timesteps=4))
    gi = GroupInference(W, torch.zeros(2), W.sum(0))
    R0, w0 = deb.group_risks(x, y, gi), [p.detach().clone() for p in deb.module.parameters()]
    b0 = {k: v.clone() for k, v in base.state_dict().items()}
    res = deb.fit(x, y, gi)
    R1 = deb.group_risks(x, y, gi)
    assert sum((p - q).abs().sum().item() for p, q in zip(deb.module.parameters(), w0)) > 0
    assert R1.std() < 0.5 * R0.std(), (R0, R1)
    assert all(torch.equal(b0[k], v) for k, v in base.state_dict().items()) and len(res.losses) == 40


def test_controls_share_module_budget_and_sampling():
    base, sched, x, y, W = _toy()
    bias = W.argmax(1)
    cfg = InvDiffConfig(steps=2, batch_size=8, signal_timesteps=2, num_inference_steps=2)
    init = [p.clone() for p in InvDiff(base, sched, cfg).module.parameters()]
    for kind in CONTROLS:
        deb = fit_control(kind, base, sched, x, y, cfg, bias=bias)
        assert all(a.shape == b.shape for a, b in zip(deb.module.parameters(), init)) and count_params(deb.module) == sum(p.numel() for p in init)
        assert deb.config.steps == 2 and deb.config.lam == (0.0 if kind == 'lam0' else cfg.lam)
        assert deb.sample(torch.zeros(2, dtype=torch.long)).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match='bias labels'): fit_control('oracle', base, sched, x, y, cfg)
    with pytest.raises(ValueError, match='unknown control'): fit_control('dro', base, sched, x, y, cfg)


def test_same_initial_module_for_every_run():
    base, sched, *_ = _toy()
    a, b = make_module(base, seed=3), make_module(base, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert count_params(a) <= 0.1 * count_params(base)


def test_bad_input_gets_clear_errors(tmp_path):
    base, sched, x, y, W = _toy()
    deb = InvDiff(base, sched, InvDiffConfig(steps=1, batch_size=4, signal_timesteps=2))
    with pytest.raises(ValueError, match='negative|simplex'): deb.fit(x, y, torch.cat([W[:, :1] * 2, -W[:, 1:]], 1))
    with pytest.raises(ValueError, match='sum to 1'): deb.fit(x, y, W * 0.5)
    with pytest.raises(ValueError, match='rows but there are'): deb.fit(x, y, W[:10])
    with pytest.raises(ValueError, match='no groups'): deb.fit(x, y)
    with pytest.raises(ValueError, match='class labels 0..3'): deb.infer_groups(x, torch.arange(32) % 4)     # conditions the base does not know
    with pytest.raises(ValueError, match='resize'): deb.infer_groups(torch.zeros(32, 1, 16, 16), y)
    with pytest.raises(ValueError, match='one condition per image'): deb.infer_groups(x, y[:5])
    with pytest.raises(ValueError, match='num_groups=40'): InvDiff(base, sched, InvDiffConfig(num_groups=40, signal_timesteps=2)).infer_groups(x, y)
    kept = deb.infer_groups(x, y).losses                            # stage 1's matrices, reused only where they fit
    assert torch.equal(deb.infer_groups(x, y, losses=kept).W, deb.infer_groups(x, y).W)
    with pytest.raises(ValueError, match='another timestep grid or noise seed'):
        InvDiff(base, sched, InvDiffConfig(signal_timesteps=2, seed=5)).infer_groups(x, y, losses=kept)
    with pytest.raises(ValueError, match='rows but there are'): deb.infer_groups(x[:16], y[:16], losses=kept)
    with pytest.raises(ValueError, match='no unconditional losses'):
        deb.infer_groups(x, y, losses={k: v for k, v in kept.items() if k != 'uncond'})
    with pytest.raises(ValueError, match='GroupInference.losses'): deb.infer_groups(x, y, losses=kept['cond'])
    own = InvDiff(base, sched, InvDiffConfig(signal_timesteps=2, signal='loss'))      # reads only the conditional half
    assert torch.equal(own.infer_groups(x, y, losses=kept).W, own.infer_groups(x, y).W)
    for bad, msg in [(dict(batch_size=0), 'batch_size'), (dict(batch_size=-2), 'batch_size'), (dict(r=0.0), 'r must'),
                     (dict(r=1.2), 'r must'), (dict(lam=-0.5), 'lam'), (dict(num_groups=1), 'num_groups'), (dict(steps=0), 'steps')]:
        with pytest.raises(ValueError, match=msg): InvDiffConfig(**bad)
    # a module folder saved for another base
    deb.save_pretrained(tmp_path / 'm')
    other = UNet(UNetConfig(in_channels=1, image_size=8, base_channels=16, channel_mults=(1, 2), attn_resolutions=(), num_classes=1,
                            num_train_timesteps=50))
    with pytest.raises(ValueError, match='another base'): InvDiff.from_pretrained(tmp_path / 'm', other, sched)
    same_arch = UNet(base.config); same_arch.out[-1].weight.data.fill_(0.1)
    with pytest.raises(ValueError, match='other weights'): InvDiff.from_pretrained(tmp_path / 'm', same_arch, sched)
    InvDiff.from_pretrained(tmp_path / 'm', same_arch, sched, strict=False)
    # an interrupted or mixed save is refused, not half-read
    (tmp_path / 'm' / 'module.safetensors').write_bytes(b'truncated')
    with pytest.raises(ValueError, match='interrupted or mixed'): InvDiff.from_pretrained(tmp_path / 'm', base, sched)
    with pytest.raises(FileNotFoundError, match='invdiff_config.json'): InvDiff.from_pretrained(tmp_path, base, sched)


def test_condition_ids():
    assert condition_ids(torch.tensor([2, 0, 2])).tolist() == [2, 0, 2]
    e = torch.randn(2, 3, 4); ids = condition_ids(e[torch.tensor([1, 0, 1, 1])])
    assert ids[0] == ids[2] == ids[3] != ids[1]
