"Unit tests for invdiff_nb.inverse_problems: measurement operators, the consistency hook, RePaint's walk, restore, SR3's wrapper, the digits-DDPM loader's key."
import json
from pathlib import Path

import pytest
import torch

from invdiff_nb.core import config_hash, make_generator
from invdiff_nb.ddpm import GaussianScheduler, ddpm_step_mean, diffusion_loss
from invdiff_nb.models import UNet, UNetConfig
from invdiff_nb.sampling import sample
from invdiff_nb.inverse_problems import (DIGITS_DDPM_RUNS, Consistency, ConcatConditioned, DownsampleOp, MaskOp, bicubic_upsample,
                                         digits_ddpm_run, resampling_path, restore)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
T = 40


def _x(seed=0, shape=(3, 1, 8, 8)): return torch.rand(shape, generator=make_generator(seed)) * 2 - 1


def _box(n=8):
    m = torch.ones(n, n, dtype=torch.bool); m[2:6, 2:6] = False
    return m


def _toy(seed=0, in_channels=1, out_channels=None):
    torch.manual_seed(seed)
    return UNet(UNetConfig(image_size=8, in_channels=in_channels, out_channels=out_channels, base_channels=8, channel_mults=(1, 2),
                           attn_resolutions=(), norm_groups=4, dropout=0.0, num_train_timesteps=T)).eval()


def _cells_of_15():
    nb = json.loads((ROOT / 'nbs' / '15_ddpm_digits.ipynb').read_text())
    return [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']


def test_digits_ddpm_table_is_notebook_15s():
    "DIGITS_DDPM_RUNS holds the values of notebook 15's RUNS table that make its cache key."
    src = next(s for s in _cells_of_15() if s.lstrip().startswith('RUNS = {'))
    ns = {'UNetConfig': UNetConfig}
    exec(src[:src.index('\nseed_everything(')], ns)
    for profile, ours in DIGITS_DDPM_RUNS.items():
        theirs = ns['RUNS'][profile]
        for k, v in ours.items(): assert theirs[k] == v, (profile, k, theirs[k], v)


def test_digits_ddpm_run_hash_is_notebook_15s():
    "The run config rebuilt here hashes like the one notebook 15 builds (its cells run up to the training call)."
    from invdiff_nb import core, data, ddpm, models, train
    cells = _cells_of_15()
    table = next(s for s in cells if s.lstrip().startswith('RUNS = {'))
    key_cell = next(s for s in cells if 'class DigitsDDPMRun' in s)
    sched_cell = next(s for s in cells if 'sched_cfg = SchedulerConfig(' in s)
    for profile in ('smoke', 'cpu'):
        ns = {**vars(core), **vars(data), **vars(ddpm), **vars(models), **vars(train), 'profile': profile, 'seed': 0, 'torch': torch}
        exec(table[:table.index('\nseed_everything(')], ns)
        ns['P'], ns['R'] = core.get_profile(profile), ns['RUNS'][profile]
        exec(next(line for line in table.splitlines() if line.startswith('unet_cfg = ')), ns)
        exec(sched_cell[:sched_cell.index('\nscheduler =')], ns)
        exec(key_cell[:key_cell.index('\ndef loss_fn')], ns)
        assert config_hash(ns['run_cfg']) == config_hash(digits_ddpm_run(profile, 0)), profile


@pytest.mark.parametrize('op', [MaskOp(_box()), MaskOp(_box()[None, None]), DownsampleOp(2), DownsampleOp(4)])
def test_projection_is_exact_idempotent_and_orthogonal(op):
    x, z = _x(0), _x(1)
    y = op.forward(x)
    p = op.project(z, y)
    assert (op.forward(op.pinv(y)) - y).abs().max() < 1e-6
    assert (op.forward(p) - y).abs().max() < 1e-6 and (op.project(p, y) - p).abs().max() < 1e-6
    v = _x(2); null = v - op.pinv(op.forward(v))
    assert (op.forward(null)).abs().max() < 1e-6 and abs(((z - p) * null).sum()) < 1e-5


def test_mask_projection_keeps_known_pixels_exactly():
    x, z, m = _x(0), _x(1), _box()
    p = MaskOp(m).project(z, MaskOp(m).forward(x))
    assert torch.equal(p[..., m], x[..., m]) and torch.equal(p[..., ~m], z[..., ~m])


def test_operator_bad_inputs():
    x = _x()
    with pytest.raises(TypeError, match='boolean'): MaskOp(_box().float())
    with pytest.raises(ValueError, match='does not match images'): MaskOp(torch.ones(4, 4, dtype=torch.bool)).forward(x)
    with pytest.raises(ValueError, match='does not match images'): MaskOp(torch.ones(2, 1, 8, 8, dtype=torch.bool)).forward(x)
    with pytest.raises(ValueError, match='cannot be down-sampled by 3'): DownsampleOp(3).forward(x)
    with pytest.raises(ValueError, match='positive int'): DownsampleOp(0)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'): DownsampleOp(2).forward(x[0])
    with pytest.raises(ValueError, match='maps images of shape'): DownsampleOp(2).check_measurement(x, x.shape)


def test_x0_consistency_equals_a_step_from_the_projected_x0():
    "The x0-space hook turns an ancestral step into the same step taken from the projected x0 (same noise)."
    sch = GaussianScheduler(num_train_timesteps=T); sch.set_timesteps(10)
    x0, x_t = _x(0), _x(1) * 2
    op = DownsampleOp(2); y = op.forward(_x(3))
    t, s = 20, 16
    ab_t, ab_s = float(sch.alphas_cumprod[t]), float(sch.alphas_cumprod[s])
    noise = 0.1 * _x(4)
    x_new = ddpm_step_mean(x0, x_t, ab_t, ab_s) + noise
    out = Consistency(op, y, sch, 'x0')(x_new, s, x_t=x_t, t=t, pred_x0=x0)
    ref = ddpm_step_mean(op.project(x0, y), x_t, ab_t, ab_s) + noise
    assert (out - ref).abs().max() < 1e-6


def test_xt_consistency_noises_the_measurement_to_the_level():
    "At level s the known pixels hold sqrt(abar_s) y + sqrt(1 - abar_s) eps: their mean and variance over many draws."
    sch = GaussianScheduler(num_train_timesteps=T)
    x = torch.full((4000, 1, 8, 8), 0.5); m = _box(); op = MaskOp(m)
    out = Consistency(op, op.forward(x), sch, 'x_t', make_generator(0))(torch.zeros_like(x), 25)
    ab = float(sch.alphas_cumprod[25]); known = out[..., m]
    assert abs(known.mean() - ab ** 0.5 * 0.5) < 0.01 and abs(known.var() - (1 - ab)) < 0.02
    assert torch.equal(out[..., ~m], torch.zeros_like(out[..., ~m]))


@pytest.mark.parametrize('space, r', [('x_t', 1), ('x0', 1), ('x_t', 3)])
@pytest.mark.parametrize('op', [MaskOp(_box()), DownsampleOp(2)])
def test_restore_output_agrees_with_the_measurement(op, space, r):
    x = _x(); y = op.forward(x)
    out = restore(_toy(), GaussianScheduler(num_train_timesteps=T, clip_sample=True), op, y, x.shape, 8, space=space, jump_length=2,
                  n_resample=r, generator=make_generator(1))
    assert (op.forward(out) - y).abs().max() < 1e-5 and torch.isfinite(out).all()


def test_restore_bad_inputs():
    x = _x(); sch = GaussianScheduler(num_train_timesteps=T)
    with pytest.raises(ValueError, match='maps images of shape'): restore(_toy(), sch, DownsampleOp(2), x, x.shape, 5)
    with pytest.raises(ValueError, match='ancestral'): restore(_toy(), sch, MaskOp(_box()), MaskOp(_box()).forward(x), x.shape, 5,
                                                               n_resample=2, sampler='ddim')
    with pytest.raises(ValueError, match="space must be"): Consistency(MaskOp(_box()), x, sch, space='y')


def test_resampling_path_structure():
    levels = list(range(29, -1, -1))
    for j, r in [(5, 3), (10, 2), (3, 4), (7, 2)]:
        path = resampling_path(levels, j, r)
        counts = torch.bincount(torch.tensor(path), minlength=30)
        n_full = (len(levels) // j) * j                       # levels in complete stretches are visited r times
        assert (counts[30 - n_full:] == r).all() and (counts[:30 - n_full] == 1).all(), (j, r, counts)
        sch = GaussianScheduler(num_train_timesteps=30); sch.set_timesteps(30)
        sample(lambda x, t, c=None: torch.zeros_like(x), sch, (1, 1, 2, 2), path=path)   # a valid walk for the sampler
    assert resampling_path(levels, 4, 1) == levels
    with pytest.raises(ValueError, match='jump_length'): resampling_path(levels, 0, 2)
    with pytest.raises(ValueError, match='n_resample'): resampling_path(levels, 2, 0)


def test_concat_conditioned_trains_and_samples():
    "SR3's wrapper trains with diffusion_loss and fit (the loss falls), then depends on the condition image, and samples."
    from invdiff_nb.train import TrainConfig, fit
    net = ConcatConditioned(_toy(in_channels=2, out_channels=1))
    x = _x(shape=(16, 1, 8, 8)); cond = bicubic_upsample(DownsampleOp(2).forward(x), 2)
    sch = GaussianScheduler(num_train_timesteps=T)
    loss_fn = lambda m, batch, g: diffusion_loss(m, sch, batch[0], cond=batch[1], generator=g)
    res = fit(net, loss_fn, lambda step, g: (x, cond), TrainConfig(steps=40, lr=3e-3, log_every=10), device='cpu', progress=False)
    assert sum(res.losses[-10:]) < 0.8 * sum(res.losses[:10])
    with torch.no_grad():
        t = torch.full((16,), 10)
        assert (net(x, t, cond) - net(x, t, -cond)).abs().max() > 1e-3      # the condition channel is used
    out = sample(net, sch, x.shape, num_inference_steps=4, cond=cond, generator=make_generator(1))
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match='condition image'): net(x, 3, None)
    with pytest.raises(ValueError, match='condition image'): net(x, 3, cond[:, :, :4])


def test_bicubic_upsample_range_and_shape():
    y = DownsampleOp(4).forward(_x(shape=(2, 1, 16, 16)))
    up = bicubic_upsample(y, 4)
    assert up.shape == (2, 1, 16, 16) and up.min() >= -1 and up.max() <= 1
