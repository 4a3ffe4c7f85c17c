"Unit tests for invdiff_nb.invdiff (stages 1-3 of InvDiff), including the 'any diffusers model' path."
import pytest
import torch
from torch import nn
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

from invdiff_nb.train import TrainConfig
from invdiff_nb.models import DiffusersUNet
from invdiff_nb.models import count_params
from invdiff_nb.ddpm import prediction_target
from invdiff_nb.invdiff import (GroupInferenceConfig, GroupRecovery, InvDiffModel, check_simplex, group_nmi, kmeans_1d,
                                group_risks, group_signal, infer_groups, invdiff_loss_fn, loss_matrix, minority_stats, top_group_stats,
                                per_sample_loss, timestep_grid, topk_share, train_invdiff, vrex_loss, make_module,
                                zero_init_output)


def _sched(T=50, pt='v_prediction'):
    return DDPMScheduler(num_train_timesteps=T, rescale_betas_zero_snr=True, prediction_type=pt, timestep_spacing='trailing')


def _tiny(ch, seed, n_classes=3):
    "A tiny class-conditional diffusers UNet behind the course's call; the last class (n_classes - 1) is the null class."
    torch.manual_seed(seed)
    return DiffusersUNet(UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=ch,
                             down_block_types=('DownBlock2D',) * len(ch), up_block_types=('UpBlock2D',) * len(ch),
                             norm_num_groups=4, num_class_embeds=n_classes), null_class=n_classes - 1, num_train_timesteps=50)


def _planted(delta=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes, mus = (350, 19, 6, 105), (0., delta, delta, 0.)
    s = torch.cat([m + torch.randn(n, generator=g) for n, m in zip(sizes, mus)])
    grp = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    return s, grp, (grp == 1) | (grp == 2)


def test_timestep_grid():
    t = timestep_grid(1000, 16, seed=3)
    assert t.unique().numel() == 16 and (t.diff() > 0).all() and t.min() >= 20 and t.max() <= 980 and t.max() > 900
    assert torch.equal(t, timestep_grid(1000, 16, seed=3))
    with pytest.raises(ValueError): timestep_grid(100, 0)
    with pytest.raises(ValueError): timestep_grid(100, 4, t_min=50, t_max=10)


@pytest.mark.parametrize('pt', ['epsilon', 'v_prediction', 'sample'])
def test_prediction_target_matches_diffusers(pt):
    s = _sched(pt=pt); g = torch.Generator().manual_seed(0)
    x0, n, t = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g), torch.tensor([0, 20, 49])
    want = {'epsilon': n, 'v_prediction': s.get_velocity(x0, n, t), 'sample': x0}[pt]
    assert torch.allclose(prediction_target(s, x0, n, t), want)


def test_prediction_target_bad_scheduler():
    class S: pass
    with pytest.raises(ValueError, match='prediction type'): prediction_target(S(), torch.zeros(1), torch.zeros(1), torch.zeros(1))


def test_loss_matrix_deterministic_and_paired():
    base = _tiny((8, 8), 0); s = _sched()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1)); y = torch.tensor([0, 1, 0, 1, 0, 1])
    ts = torch.tensor([3, 25, 48])
    L = loss_matrix(base, s, x, y, ts, seed=1, batch_size=4)
    assert L.shape == (6, 3) and torch.isfinite(L).all()
    assert torch.equal(L, loss_matrix(base, s, x, y, ts, seed=1, batch_size=4))
    Lu = loss_matrix(base, s, x, y, ts, seed=1, batch_size=4, unconditional=True)      # the null class comes from the model
    # the unconditional pass equals the conditional pass with all-null labels (same noise)
    assert torch.allclose(Lu, loss_matrix(base, s, x, torch.full_like(y, 2), ts, seed=1, batch_size=4))
    assert group_signal(L, Lu).shape == (6,)
    # the batch size is a speed setting: batch sizes 1, 7 and N give the same matrix (up to float rounding in the convolutions)
    x10, y10 = torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(10) % 2
    L10 = loss_matrix(base, s, x10, y10, ts, seed=1, batch_size=1)
    for b in (7, 10): torch.testing.assert_close(L10, loss_matrix(base, s, x10, y10, ts, seed=1, batch_size=b), atol=1e-5, rtol=1e-5)
    assert torch.equal(L10[:6], loss_matrix(base, s, x10[:6], y10[:6], ts, seed=1, batch_size=1))   # a sample's noise is its own
    assert not torch.equal(L, loss_matrix(base, s, x, y, ts, seed=2, batch_size=4))            # but the seed matters
    class _NoNull(nn.Module):
        def forward(self, x_t, t, cond=None): return x_t
    with pytest.raises(ValueError, match='null condition'): loss_matrix(_NoNull(), s, x, y, ts, unconditional=True)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='batch_size'): loss_matrix(base, s, x, y, ts, batch_size=bad)
    with pytest.raises(ValueError, match='does not match'):
        per_sample_loss(lambda a, b, c: a[:, :1], s, x, torch.zeros(6, dtype=torch.long), x, y)


def test_group_inference_recovers_planted_minority():
    s, grp, mino = _planted()
    for param in ['clamp', 'softmax']:
        gi = infer_groups(s, GroupInferenceConfig.official(num_groups=2, steps=200, param=param, seed=0))
        check_simplex(gi.W)
        rec, prec = vars(top_group_stats(gi.W, gi.risks, mino)).values()
        assert rec >= 0.9, (param, rec)
        assert prec > mino.float().mean().item()          # enriched beyond chance
    off = GroupInferenceConfig.official(num_groups=2, steps=200, seed=0)
    gi = infer_groups(s, off)
    assert torch.equal(gi.W, infer_groups(s, off).W)
    assert group_nmi(torch.eye(4)[grp], grp) == pytest.approx(1.0) and group_nmi(torch.ones(len(grp), 1), grp) == 0.0
    assert group_nmi(gi.W, grp) > group_nmi(torch.eye(2)[torch.randint(0, 2, (len(grp),), generator=torch.Generator().manual_seed(0))], grp)
    assert topk_share(s, mino) > 0.8                      # the planted signal itself separates the minority


def test_kmeans_1d_exact_against_brute_force():
    import itertools
    for seed in range(3):
        x = torch.randn(10, generator=torch.Generator().manual_seed(seed), dtype=torch.float64); v = x.sort().values
        brute = min(sum(((v[a:b] - v[a:b].mean()) ** 2).sum().item() for a, b in zip((0,) + c, c + (10,)))
                    for c in itertools.combinations(range(1, 10), 3))
        lab = kmeans_1d(x, 4)
        assert abs(sum(((x[lab == k] - x[lab == k].mean()) ** 2).sum().item() for k in range(4)) - brute) < 1e-9
    with pytest.raises(ValueError, match='K=0'): kmeans_1d(torch.randn(5), 0)


def test_exact_solver_isolates_planted_minority_and_beats_adam():
    s, grp, mino = _planted(delta=5.0)
    ex = infer_groups(s, num_groups=4)                                        # the default: between / exact
    ad = infer_groups(s, num_groups=4, solver='adam', steps=200, seed=0)
    check_simplex(ex.W)
    assert ex.history[-1] >= ad.history[-1] - 1e-6
    r = minority_stats(ex.W, mino)
    assert r.recall >= 0.9 and r.precision >= 0.9, r
    assert r.recall > minority_stats(ad.W, mino).recall + 0.5       # the local Adam solution mixes the minority into big groups
    # two pure minority groups count as recovered
    W2 = torch.eye(3)[torch.tensor([0, 0, 0, 0, 1, 2])]; m2 = torch.tensor([0, 0, 0, 0, 1, 1]).bool()
    assert minority_stats(W2, m2) == GroupRecovery(1.0, 1.0) and top_group_stats(W2, torch.tensor([0., 1, 2]), m2) == GroupRecovery(0.5, 1.0)
    with pytest.raises(ValueError, match='rows'): minority_stats(W2, m2[:3])
    with pytest.raises(ValueError, match='exact'): GroupInferenceConfig(solver='exact', objective='std')


def test_group_inference_bad_input():
    s = torch.randn(10)
    with pytest.raises(ValueError, match='num_groups'): infer_groups(s, num_groups=1)
    with pytest.raises(ValueError, match='num_groups=11'): infer_groups(s, num_groups=11)
    with pytest.raises(ValueError, match='fewer than num_groups'): infer_groups(s, num_groups=3, within=torch.tensor([0] * 8 + [1] * 2))
    with pytest.raises(ValueError, match='one partition label'): infer_groups(s, within=torch.zeros(4))
    with pytest.raises(ValueError, match='objective'): GroupInferenceConfig(objective='max')
    with pytest.raises(ValueError, match='NaN'): infer_groups(torch.tensor([1., float('nan'), 2.]), num_groups=2)
    with pytest.raises(ValueError, match='sum to 1'): check_simplex(torch.full((3, 2), 0.3))
    with pytest.raises(ValueError, match='negative'): check_simplex(torch.tensor([[2., -1.]]))
    with pytest.raises(ValueError, match=r'\(N, K\)'): check_simplex(torch.ones(3))


def test_vrex_by_hand():
    l = torch.tensor([1., 2., 3., 4.]); W = torch.tensor([[1., 0, 0], [1, 0, 0], [0, 1, 0], [0, .5, .5]])
    R = torch.tensor([1.5, 10 / 3, 4.])
    L, Rc = vrex_loss(l, W, lam=2.0)
    assert torch.allclose(Rc, R) and torch.allclose(L, R.mean() + 2 * ((R - R.mean()) ** 2).mean())
    assert torch.allclose(group_risks(l, W)[1], torch.tensor([2., 1.5, .5]))
    L1, R1 = vrex_loss(l[:2], W[:2], lam=3.0)               # groups without mass in the batch are skipped
    assert len(R1) == 1 and torch.allclose(L1, torch.tensor(1.5))
    with pytest.raises(ValueError, match='lam'): vrex_loss(l, W, lam=-0.1)
    with pytest.raises(ValueError, match='one row per loss'): vrex_loss(l[:3], W, lam=1.0)
    with pytest.raises(ValueError, match='simplex'): vrex_loss(l, W * 2)                 # rows off the simplex
    W_neg = W.clone(); W_neg[0] = torch.tensor([1.5, -0.5, 0.])                      # sums to 1, but negative
    with pytest.raises(ValueError, match='negative'): vrex_loss(l, W_neg)


def test_module_zero_init_identity_and_bad_input():
    base, mod = _tiny((32, 64), 0), zero_init_output(_tiny((8, 8), 1))
    x, t, c = torch.randn(2, 3, 8, 8), torch.tensor([3, 40]), torch.tensor([0, 2])
    with torch.no_grad():
        ref = base(x, t, c)
        assert torch.allclose(InvDiffModel(base, mod, r=0.2, mode='convex')(x, t, c), 0.8 * ref, atol=1e-6)
        assert torch.allclose(InvDiffModel(base, mod, r=0.7, mode='residual')(x, t, c), ref, atol=1e-6)
    assert count_params(InvDiffModel(base, mod, r=1.0), trainable_only=True) == count_params(mod)
    for r in [0, -1, 1.01, 2]:
        with pytest.raises(ValueError, match='r must be'): InvDiffModel(base, mod, r=r)
    with pytest.raises(ValueError, match='mode'): InvDiffModel(base, mod, r=0.5, mode='sum')
    with pytest.raises(ValueError, match='base trainable'): InvDiffModel(base, base, r=0.5, max_frac=None)
    with pytest.raises(ValueError, match='smaller module'): InvDiffModel(mod, base, r=0.5)
    m = InvDiffModel(base, mod, r=0.5); m.train()
    assert m.module.training and not m.base.training
    base.unet.conv_out.weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match='frozen'): m.check_frozen()


def test_stage2_trains_module_only():
    base, s = _tiny((32, 64), 0), _sched()
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(2)).clamp(-1, 1)
    y = torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(3))
    W = torch.softmax(torch.randn(16, 3, generator=torch.Generator().manual_seed(4)), 1)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    m = InvDiffModel(base, zero_init_output(_tiny((8, 8), 1)), r=0.2)
    w0 = [p.detach().clone() for p in m.module.parameters()]
    res = train_invdiff(m, s, x, y, W, TrainConfig(steps=2, lr=1e-3, log_every=1), batch_size=4)
    assert any(not torch.equal(p, q) for p, q in zip(m.module.parameters(), w0))        # the optimiser moved the module
    assert len(res.losses) == 2 and all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert not any(p.requires_grad for p in base.parameters())
    with pytest.raises(ValueError, match='rows'): train_invdiff(m, s, x, y, W[:5], TrainConfig(steps=1))
    for bad in (0, -1):
        with pytest.raises(ValueError, match='batch_size'): train_invdiff(m, s, x, y, W, TrainConfig(steps=1), batch_size=bad)
    with pytest.raises(ValueError, match='simplex'): invdiff_loss_fn(s, W * 3)
    with pytest.raises(ValueError, match='lam'): invdiff_loss_fn(s, W, lam=-1)


def test_any_diffusers_model_stages_1_to_3(tmp_path):
    kw = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
              up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'), cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4)
    torch.manual_seed(0)
    UNet2DConditionModel(block_out_channels=(32, 64), **kw).save_pretrained(tmp_path / 'base')
    null = torch.zeros(1, 4, 8)                            # the 'empty prompt' embedding
    base = DiffusersUNet(UNet2DConditionModel.from_pretrained(tmp_path / 'base'), null_cond=null, num_train_timesteps=40)
    module = zero_init_output(DiffusersUNet(UNet2DConditionModel(block_out_channels=(8, 8), **kw), num_train_timesteps=40))
    s = _sched(T=40)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 8, 8, generator=g).clamp(-1, 1)
    prompts = torch.randn(2, 4, 8, generator=g)            # two 'prompt embeddings' (L=4 tokens, D=8)
    y = torch.arange(12) % 2; cond = prompts[y]
    # stage 1
    L = loss_matrix(base, s, x, cond, timestep_grid(40, 4, seed=0), batch_size=8)
    Lu = loss_matrix(base, s, x, cond, timestep_grid(40, 4, seed=0), batch_size=8, unconditional=True)
    gi = infer_groups(group_signal(L, Lu, zscore=True), num_groups=2, within=y)
    check_simplex(gi.W)
    # stage 2
    m = InvDiffModel(base, module, r=0.2, mode='convex')
    with torch.no_grad():
        assert torch.allclose(m(x[:2], torch.tensor([1, 30]), cond[:2]), 0.8 * base(x[:2], torch.tensor([1, 30]), cond[:2]), atol=1e-5)
    train_invdiff(m, s, x, cond, gi.W, TrainConfig(steps=2, lr=1e-3, log_every=1), batch_size=4)
    m.check_frozen()
    # stage 3: the one sampler with classifier-free guidance (text-embedding null condition), diffusers scheduler
    from invdiff_nb.sampling import sample, CFGModel
    xt = sample(CFGModel(m, 2.0), s, (2, 3, 8, 8), num_inference_steps=3, sampler='ddpm', cond=prompts,
                generator=torch.Generator().manual_seed(1))
    assert xt.shape == (2, 3, 8, 8) and torch.isfinite(xt).all()


def test_fit_base_caches_only_when_asked(tmp_path, monkeypatch):
    from invdiff_nb.invdiff import fit_base
    monkeypatch.setenv('INVDIFF_CACHE', str(tmp_path / 'default'))
    s = _sched()
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1); y = torch.tensor([0, 1] * 4)
    m0, _, l0 = fit_base(_tiny((8, 8), 0), s, x, y, TrainConfig(steps=2, log_every=1), 4)
    assert not l0 and not (tmp_path / 'default').exists()               # no cache unless asked
    m1, _, l1 = fit_base(_tiny((8, 8), 0), s, x, y, TrainConfig(steps=2, log_every=1), 4, cache=tmp_path / 'c', name='b')
    m2, _, l2 = fit_base(_tiny((8, 8), 1), s, x, y, TrainConfig(steps=2, log_every=1), 4, cache=tmp_path / 'c', name='b')
    assert not l1 and l2 and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_with_course_scheduler_and_unet():
    from invdiff_nb.ddpm import GaussianScheduler, SchedulerConfig, diffusion_loss
    from invdiff_nb.models import UNet, UNetConfig
    s = GaussianScheduler(SchedulerConfig(num_train_timesteps=50, rescale_betas_zero_snr=True, prediction_type='v_prediction',
                                          timestep_spacing='trailing'))
    g = torch.Generator().manual_seed(0)
    x0, n, t = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g), torch.tensor([0, 25, 49])
    assert torch.allclose(prediction_target(s, x0, n, t), s.get_target(x0, n, t))
    torch.manual_seed(0)
    mk = lambda ch: UNet(UNetConfig(in_channels=3, image_size=8, base_channels=ch, channel_mults=(1, 2), attn_resolutions=(),
                                    dropout=0.0, norm_groups=4, num_classes=2, num_train_timesteps=50))
    base = mk(16); base.out[-1].weight.data.normal_(0, 0.1)      # a non-trivial base
    y = torch.tensor([0, 1, 2])
    # our per-sample loss = the course's diffusion_loss(reduction='none') with the same t and noise
    assert torch.allclose(per_sample_loss(base, s, x0, t, n, y), diffusion_loss(base, s, x0, y, t=t, noise=n, reduction='none'), atol=1e-6)
    m = InvDiffModel(base, zero_init_output(mk(4)), r=0.3, mode='convex')
    assert m.null_class == 2
    with torch.no_grad(): assert torch.allclose(m(x0, t, y), 0.7 * base(x0, t, y), atol=1e-6)


def test_group_balanced_sampling():
    from invdiff_nb.invdiff import group_balanced_probs, indexed_batches
    W = torch.eye(2)[torch.tensor([0] * 95 + [1] * 5)]
    p = group_balanced_probs(W)
    assert torch.allclose((W * p[:, None]).sum(0), torch.tensor([0.5, 0.5]))
    gb = indexed_batches(torch.zeros(100, 1), None, 4000, p)
    idx = gb(0, torch.Generator().manual_seed(0))[2]
    assert abs((idx >= 95).float().mean().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match='simplex'): group_balanced_probs(W * 2)


def test_lora_variant_equals_base_at_init_and_keeps_base():
    from invdiff_nb.invdiff import lora_model
    base, s = _tiny((16, 32), 0), _sched()
    lm = lora_model(base, rank=2, target_modules=r'.*(conv1|conv2)$')
    x, t, c = torch.randn(2, 3, 8, 8), torch.tensor([3, 40]), torch.tensor([0, 2])
    with torch.no_grad(): assert torch.allclose(lm(x, t, c), base(x, t, c), atol=1e-6)
    assert 0 < count_params(lm, trainable_only=True) <= 0.1 * count_params(base)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    xs = torch.randn(8, 3, 8, 8).clamp(-1, 1); ys = torch.tensor([0, 1] * 4)
    train_invdiff(lm, s, xs, ys, torch.ones(8, 1), TrainConfig(steps=2, lr=1e-2, log_every=1), batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    with torch.no_grad(): assert not torch.allclose(lm(x, t, c), base(x, t, c), atol=1e-6)
    with pytest.raises(ValueError, match='rank'): lora_model(base, rank=0)
    with pytest.raises(ValueError, match='LoRA parameters'): lora_model(base, rank=64)
    with pytest.raises(TypeError, match='InvDiffModel'): train_invdiff(base, s, xs, ys, torch.ones(8, 1), TrainConfig(steps=1))


def test_shared_noise_pairs_groups_by_rank():
    "With shared_noise the m-th member of every group in a batch gets the same t and noise; without it they differ."
    from invdiff_nb.invdiff import batch_losses, InvDiffConfig
    seen = {}
    def spy(x_t, t, cond=None):
        seen['t'] = t.clone(); seen['x_t'] = x_t.clone(); return torch.zeros_like(x_t)
    sched = _sched(T=1000)
    x0 = torch.zeros(6, 3, 4, 4)                                  # x_t = sigma_t * noise: identical noise gives identical x_t
    W = torch.eye(3)[torch.tensor([0, 1, 0, 2, 1, 0])]           # group members: 0 -> rows 0, 2, 5; 1 -> 1, 4; 2 -> 3
    batch_losses(spy, sched, x0, None, W, torch.Generator().manual_seed(0), shared_noise=True)
    t, xt = seen['t'], seen['x_t']
    for a, b in ((0, 1), (0, 3), (2, 4)):                        # same rank in different groups
        assert t[a] == t[b] and torch.equal(xt[a], xt[b])
    assert len(set(t[[0, 2, 5]].tolist())) == 3                  # different ranks in one group: different t (here)
    batch_losses(spy, sched, x0, None, W, torch.Generator().manual_seed(0), shared_noise=False)
    assert not torch.equal(seen['x_t'][0], seen['x_t'][1])
    with pytest.raises(ValueError, match='shared_noise'): InvDiffConfig(shared_noise='yes')
    with pytest.raises(ValueError, match='shared_noise'): invdiff_loss_fn(sched, W, shared_noise=1)
    assert InvDiffConfig().shared_noise and not InvDiffConfig.official().shared_noise
