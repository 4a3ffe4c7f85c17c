"""The one training loop, exercised from a fresh process (no notebook state)."""
import math
import warnings

import pytest
import torch
from torch import nn

from invdiff_nb.core import CheckpointError, load_checkpoint
from invdiff_nb.train import TrainConfig, ema_update, fit, lr_at, run_fingerprint, shard_batch

X = torch.linspace(-2, 2, 128)[:, None]
Y = torch.sin(2 * X)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Dropout(0.1), nn.Linear(32, 1))


def get_batch(step, g):
    idx = torch.randint(0, len(X), (16,), generator=g)
    return X[idx], Y[idx]


def mse(m, b, g):
    return ((m(b[0]) - b[1]) ** 2).mean()


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_interrupted_run_resumes_bit_exact(tmp_path):
    cfg = TrainConfig(steps=30, lr=3e-3, ema_decay=0.9, ckpt_every=10, log_every=5)
    ref = fit(net(), mse, get_batch, cfg, progress=False)

    def crashing(step, g):
        if step == 17: raise KeyboardInterrupt
        return get_batch(step, g)
    ck = tmp_path / 'ck.safetensors'
    with pytest.raises(KeyboardInterrupt): fit(net(), mse, crashing, cfg, ckpt_path=ck, progress=False)
    assert load_checkpoint(ck).step == 10
    res = fit(nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Dropout(0.1), nn.Linear(32, 1)), mse, get_batch, cfg, ckpt_path=ck, progress=False)
    assert same_weights(ref.model, res.model) and same_weights(ref.ema, res.ema)
    assert res.losses == ref.losses
    assert [p.name for p in tmp_path.iterdir()] == ['ck.safetensors']


def learned(res, start_weights) -> bool:
    "The loss fell to a fifth and the weights moved: what any working optimiser achieves on this problem."
    moved = any(not torch.equal(v, start_weights[k]) for k, v in res.model.state_dict().items())
    return moved and sum(res.losses[-10:]) < 0.2 * sum(res.losses[:10])


def test_learns_and_lr_schedule():
    m = net(); w0 = {k: v.clone() for k, v in m.state_dict().items()}
    res = fit(m, mse, get_batch, TrainConfig(steps=300, lr=1e-2, warmup_steps=20), progress=False)
    assert learned(res, w0)
    c = TrainConfig(steps=10, lr=1.0, warmup_steps=5, lr_schedule='cosine')
    assert lr_at(0, c) == pytest.approx(0.2) and lr_at(4, c) == pytest.approx(1.0) and lr_at(9, c) < 0.1


def test_learning_check_fails_when_the_optimiser_does_nothing(monkeypatch):
    monkeypatch.setattr(torch.optim.AdamW, 'step', lambda self, closure=None: None)
    m = net(); w0 = {k: v.clone() for k, v in m.state_dict().items()}
    res = fit(m, mse, get_batch, TrainConfig(steps=300, lr=1e-2, warmup_steps=20), progress=False)
    assert not learned(res, w0)


def test_ema_update_matches_the_per_tensor_formula_and_skips():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    want = {k: 0.9 * v + 0.1 * b.state_dict()[k] for k, v in a.state_dict().items()}
    ema_update(a, b, 0.9)
    for k, v in a.state_dict().items(): assert torch.allclose(v, want[k], rtol=0, atol=1e-7)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    ema_update(a, b, 0.9, skip=torch.tensor(1.0))
    assert all(torch.equal(v, before[k]) for k, v in a.state_dict().items())
    with pytest.raises(ValueError, match='copy of the model'): ema_update(a, nn.Linear(3, 3, bias=False), 0.9)


@pytest.mark.parametrize('bad_value', [float('nan'), float('inf')])
def test_nonfinite_loss_leaves_the_last_finite_weights(bad_value):
    calls = []
    def loss(m, b, g):
        calls.append(0)
        return mse(m, b, g) * (bad_value if len(calls) == 4 else 1.0)
    m = net()
    with pytest.raises(FloatingPointError, match='at step 3'):
        fit(m, loss, get_batch, TrainConfig(steps=10, log_every=5, ema_decay=0.5), progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    ref = fit(net(), mse, get_batch, TrainConfig(steps=3, log_every=5, ema_decay=0.5), progress=False)
    assert same_weights(m, ref.model)


def test_infinite_gradient_with_a_finite_loss_is_caught():
    m, backward_calls = net(), []
    def poison(grad):                                       # the second backward pass (step 1) yields an infinite gradient
        backward_calls.append(0)
        return grad * float('inf') if len(backward_calls) == 2 else grad
    m[0].weight.register_hook(poison)
    with pytest.raises(FloatingPointError, match=r'loss \(\d.*at step 1'):
        fit(m, mse, get_batch, TrainConfig(steps=6, log_every=3, grad_clip=None), progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_stale_checkpoints_are_refused(tmp_path):
    ck = tmp_path / 'ck.safetensors'
    cfg = TrainConfig(steps=3)
    fit(net(), mse, get_batch, cfg, ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match=r"differs in: train; keys \['train.lr'\]"):
        fit(net(), mse, get_batch, TrainConfig(steps=3, lr=1e-3), ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match='differs in: run'):
        fit(net(), mse, get_batch, cfg, ckpt_path=ck, progress=False, run_config={'width': 64})
    def other_data(step, g):
        idx = torch.randint(0, len(X), (16,), generator=g)
        return X[idx], -Y[idx]
    with pytest.raises(CheckpointError, match='differs in: data'): fit(net(), mse, other_data, cfg, ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match='differs in: model'):
        fit(nn.Sequential(nn.Linear(1, 8), nn.SiLU(), nn.Dropout(0.1), nn.Linear(8, 1)), mse, get_batch, cfg, ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match='differs in: loss'):
        fit(net(), lambda m, b, g: (m(b[0]) - b[1]).abs().mean(), get_batch, cfg, ckpt_path=ck, progress=False)
    m = net()
    with pytest.raises(CheckpointError, match='differs in: trained'):
        fit(m, mse, get_batch, cfg, ckpt_path=ck, progress=False, params=m[0].parameters())
    with pytest.raises(CheckpointError, match='already at step 3, beyond cfg.steps=2'):
        fit(net(), mse, get_batch, TrainConfig(steps=2), ckpt_path=ck, progress=False)
    assert fit(net(), mse, get_batch, TrainConfig(steps=5), ckpt_path=ck, progress=False).step == 5   # constant lr: may extend
    cos = TrainConfig(steps=4, lr_schedule='cosine')
    fit(net(), mse, get_batch, cos, ckpt_path=tmp_path / 'cos.safetensors', progress=False)
    with pytest.raises(CheckpointError, match='cosine schedule over 4 steps'):
        fit(net(), mse, get_batch, cos.replace(steps=8), ckpt_path=tmp_path / 'cos.safetensors', progress=False)


def test_fingerprint_sees_loss_closures_and_ignores_bookkeeping():
    from invdiff_nb.ddpm import GaussianScheduler, diffusion_loss
    def loss_for(s): return lambda m, b, g: diffusion_loss(m, s, b[0], generator=g)
    a = run_fingerprint(TrainConfig(), net(), loss_for(GaussianScheduler()), get_batch, list(net().parameters()), torch.device('cpu'))
    b = run_fingerprint(TrainConfig(log_every=7, ckpt_every=3, steps=5), net(), loss_for(GaussianScheduler()), get_batch, list(net().parameters()), torch.device('cpu'))
    c = run_fingerprint(TrainConfig(), net(), loss_for(GaussianScheduler(prediction_type='v_prediction')), get_batch, list(net().parameters()), torch.device('cpu'))
    assert a == b and a['loss'] != c['loss'] and a['data'] == c['data']
    assert '0x' not in str(a)                                                     # no memory addresses


def test_caller_modes_and_global_rng_are_left_alone():
    m = net().eval(); m[1].train()                                            # mixed modes
    state = torch.get_rng_state()
    fit(m, mse, get_batch, TrainConfig(steps=3), progress=False)
    assert [x.training for x in m.modules()] == [False, False, True, False, False]
    assert torch.equal(torch.get_rng_state(), state)
    m.train()
    with pytest.raises(ValueError, match='scalar'): fit(m, lambda mm, b, g: mm(b[0]), get_batch, TrainConfig(steps=2), progress=False)
    assert all(x.training for x in m.modules()) and torch.equal(torch.get_rng_state(), state)


def test_compile_failing_at_the_first_step_falls_back_to_eager(monkeypatch):
    class FailsWhenCalled(nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, *a, **k): raise RuntimeError('simulated inductor failure')
    monkeypatch.setattr(torch, 'compile', lambda m, **kw: FailsWhenCalled(m))
    cfg = TrainConfig(steps=8, log_every=4, ema_decay=0.9)
    ref = fit(net(), mse, get_batch, cfg, progress=False)
    with pytest.warns(UserWarning, match='torch.compile failed at the first step.*simulated inductor failure'):
        res = fit(net(), mse, get_batch, cfg.replace(compile=True), progress=False)
    assert same_weights(res.model, ref.model) and res.losses == ref.losses       # the same run, eagerly
    with pytest.raises(ValueError, match='scalar'):                             # the caller's own errors still surface
        fit(net(), lambda m, b, g: m(b[0]), get_batch, cfg.replace(compile=True), progress=False)


@pytest.mark.parametrize('kw,msg', [(dict(lr=float('nan')), 'lr must be'), (dict(lr=0), 'lr must be'), (dict(grad_clip=-1.0), 'grad_clip'),
                                    (dict(grad_clip=0.0), 'grad_clip'), (dict(warmup_steps=-1), 'warmup_steps'), (dict(weight_decay=-0.1), 'weight_decay'),
                                    (dict(betas=(0.9, 1.0)), r'betas\[1\]'), (dict(betas=(0.9,)), 'betas must be two'), (dict(steps=2.5), 'steps'),
                                    (dict(ema_decay=1.5), 'ema_decay'), (dict(ckpt_every=-1), 'ckpt_every'), (dict(log_every=0), 'log_every'),
                                    (dict(seed=-1), 'seed'), (dict(lr_schedule='step'), 'lr_schedule')])
def test_train_config_rejects(kw, msg):
    with pytest.raises(ValueError, match=msg): TrainConfig(**kw)


def test_bad_inputs():
    with pytest.raises(ValueError, match='no trainable'): fit(net().requires_grad_(False), mse, get_batch, TrainConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match='divisible'): shard_batch(torch.zeros(3), 0, 2)


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Conv2d(8, 1, 3, padding=1))


IMG = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
def img_batch(step, g): return (IMG[torch.randint(0, len(IMG), (16,), generator=g)],)
def denoise(m, b, g):
    noise = torch.randn(b[0].shape, generator=g)
    return (m(b[0] + noise) - b[0]).pow(2).mean()


def test_shards_train_like_one_thread_and_deterministically(tmp_path):
    cfg = TrainConfig(steps=12, lr=1e-2, ema_decay=0.9, log_every=4, ckpt_every=4)
    one = fit(conv_net(), denoise, img_batch, cfg, progress=False)
    two = fit(conv_net(), denoise, img_batch, cfg.replace(shards=2), progress=False)
    again = fit(conv_net(), denoise, img_batch, cfg.replace(shards=2), progress=False)
    assert same_weights(two.model, again.model) and two.losses == again.losses                  # deterministic
    for k, v in one.model.state_dict().items(): assert torch.allclose(v, two.model.state_dict()[k], atol=1e-5), k   # same run up to rounding
    assert max(abs(a - b) for a, b in zip(one.losses, two.losses)) < 1e-5
    def crashing(step, g):
        if step == 9: raise KeyboardInterrupt
        return img_batch(step, g)
    ck = tmp_path / 'ck.safetensors'
    with pytest.raises(KeyboardInterrupt): fit(conv_net(), denoise, crashing, cfg.replace(shards=2), ckpt_path=ck, progress=False)
    res = fit(conv_net(), denoise, img_batch, cfg.replace(shards=2), ckpt_path=ck, progress=False)
    assert same_weights(res.model, two.model) and res.losses == two.losses                       # resumes bit for bit


def test_shards_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match='dropout or batch norm'): fit(net(), mse, get_batch, TrainConfig(steps=1, shards=2), progress=False)
    with pytest.raises(ValueError, match='do not combine'): fit(conv_net(), denoise, img_batch, TrainConfig(steps=1, shards=2, compile=True), progress=False)
    with pytest.raises(ValueError, match='shards'): TrainConfig(shards=0)
