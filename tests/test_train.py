"""The one training loop, exercised from a fresh process (no notebook state)."""
import pytest
import torch
from torch import nn

from invdiff_nb.core import CheckpointError, load_checkpoint
from invdiff_nb.train import TrainConfig, fit, lr_at, shard_batch

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
    for k, v in ref.model.state_dict().items(): assert torch.equal(v, res.model.state_dict()[k])
    for k, v in ref.ema.state_dict().items(): assert torch.equal(v, res.ema.state_dict()[k])
    assert res.losses == ref.losses
    assert [p.name for p in tmp_path.iterdir()] == ['ck.safetensors']


def test_learns_and_lr_schedule():
    res = fit(net(), mse, get_batch, TrainConfig(steps=300, lr=1e-2, warmup_steps=20), progress=False)
    assert sum(res.losses[-10:]) < 0.2 * sum(res.losses[:10])
    c = TrainConfig(steps=10, lr=1.0, warmup_steps=5, lr_schedule='cosine')
    assert lr_at(0, c) == pytest.approx(0.2) and lr_at(4, c) == pytest.approx(1.0) and lr_at(9, c) < 0.1


def test_bad_inputs(tmp_path):
    calls = []
    def nan_loss(m, b, g):
        calls.append(0)
        return mse(m, b, g) * (float('inf') if len(calls) == 4 else 1.0)
    with pytest.raises(FloatingPointError, match='at step 3'): fit(net(), nan_loss, get_batch, TrainConfig(steps=10, log_every=2), progress=False)
    ck = tmp_path / 'ck.safetensors'
    fit(net(), mse, get_batch, TrainConfig(steps=3), ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match='another config'):
        fit(net(), mse, get_batch, TrainConfig(steps=3, lr=1e-3), ckpt_path=ck, progress=False)
    with pytest.raises(CheckpointError, match='another config'):
        fit(net(), mse, get_batch, TrainConfig(steps=3), ckpt_path=ck, progress=False, run_config={'width': 64})
    with pytest.raises(ValueError, match='no trainable'): fit(net().requires_grad_(False), mse, get_batch, TrainConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match='ema_decay'): TrainConfig(ema_decay=1.5)
    with pytest.raises(ValueError, match='divisible'): shard_batch(torch.zeros(3), 0, 2)
