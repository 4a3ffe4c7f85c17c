"""Unit tests of invdiff_nb.core: round trips, and each bad input with its message."""
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import invdiff_nb
from invdiff_nb.core import (PROFILES, CheckpointError, Config, derive_seed, flatten_state, get_device, get_profile,
                             image_grid, load_checkpoint, load_or_train, lookup_profile, make_generator, read_results,
                             save_checkpoint, seed_everything, unflatten_state, write_results)


@dataclass
class Inner(Config):
    channels: tuple[int, ...] = (8, 16)
    dropout: float = 0.1


@dataclass
class Outer(Config):
    name: str = 'x'
    inner: Inner = field(default_factory=Inner)
    steps: int = 3
    note: str | None = None


def test_profiles_and_unknown_profile():
    assert set(PROFILES) == {'smoke', 'cpu', 'gpu'} and get_profile('smoke').name == 'smoke'
    with pytest.raises(KeyError, match=r"unknown profile 'fast': choose one of \['cpu', 'gpu', 'smoke'\]"):
        get_profile('fast')
    with pytest.raises(KeyError, match="unknown sampler 'x'"):
        lookup_profile({'smoke': 1}, 'x', what='sampler')
    assert lookup_profile({'smoke': 1, 'cpu': 2}, 'cpu') == 2


def test_seeds_and_generators():
    assert seed_everything(3) == 3
    with pytest.raises(ValueError, match='non-negative int'): seed_everything(-1)
    with pytest.raises(ValueError, match='non-negative int'): seed_everything(1.5)
    a = torch.randn(4, generator=make_generator(7)); torch.randn(3); b = torch.randn(4, generator=make_generator(7))
    assert torch.equal(a, b)
    assert derive_seed(0, 'a', 1) == derive_seed(0, 'a', 1) != derive_seed(1, 'a', 1)
    assert 0 <= derive_seed(123, 'stage') < 2**31


def test_device_choice(monkeypatch):
    assert get_device('cpu') == torch.device('cpu')
    monkeypatch.setenv('INVDIFF_DEVICE', 'cpu')
    assert get_device() == torch.device('cpu')
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA is not available'): get_device('cuda')


def test_config_round_trip_and_unknown_key(tmp_path):
    c = Outer(inner=Inner(channels=(1, 2, 3)), steps=9, note='n')
    assert Outer.from_json(c.to_json()) == c and isinstance(Outer.from_json(c.to_json()).inner.channels, tuple)
    c.save(tmp_path / 'c.json')
    assert Outer.load(tmp_path / 'c.json') == c
    assert c.replace(steps=1).steps == 1
    with pytest.raises(ValueError, match=r"Outer has no field\(s\) \['stepz'\]"): Outer.from_dict({'stepz': 1})
    with pytest.raises(FileNotFoundError, match='does not exist'): Outer.load(tmp_path / 'missing.json')


def test_flatten_state_round_trip():
    state = {'a': torch.arange(3.), 'b': [1, (2.5, None)], 3: {'inf': float('inf'), 't': torch.ones(2, 2)}}
    tensors, skel = flatten_state(state)
    back = unflatten_state(tensors, json.loads(json.dumps(skel)))
    assert torch.equal(back['a'], state['a']) and back['b'] == [1, (2.5, None)] and back[3]['inf'] == float('inf')
    with pytest.raises(TypeError, match='cannot store a function'): flatten_state({'f': lambda: 0})


def _net_and_opt():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2); opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward(); opt.step()
    return net, opt


def test_checkpoint_round_trip(tmp_path):
    net, opt = _net_and_opt()
    p = save_checkpoint(tmp_path / 'sub' / 'ck.safetensors', {'model': net.state_dict(), 'optim': opt.state_dict()},
                        Outer(steps=5), step=5, seed=11)
    ck = load_checkpoint(p, expected_config=Outer(steps=5))
    assert ck.step == 5 and ck.seed == 11 and ck.config == Outer(steps=5).to_dict() and ck.path == p
    net2 = torch.nn.Linear(3, 2); net2.load_state_dict(ck.state['model'])
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3); opt2.load_state_dict(ck.state['optim'])
    assert torch.equal(net2.weight, net.weight)
    assert [f.name for f in p.parent.iterdir()] == ['ck.safetensors'], 'a temporary file was left behind'
    assert load_checkpoint(p, expected_config={'name': 'x', 'inner': {'channels': [8, 16], 'dropout': 0.1},
                                               'steps': 5, 'note': None}).step == 5


def test_checkpoint_bad_inputs(tmp_path):
    net, _ = _net_and_opt()
    p = save_checkpoint(tmp_path / 'ck.safetensors', {'model': net.state_dict()}, Outer(), step=1, seed=0)
    with pytest.raises(CheckpointError, match='no checkpoint at'): load_checkpoint(tmp_path / 'missing.safetensors')
    (tmp_path / 'trunc.safetensors').write_bytes(p.read_bytes()[:40])
    with pytest.raises(CheckpointError, match='corrupt or truncated'): load_checkpoint(tmp_path / 'trunc.safetensors')
    (tmp_path / 'noise.safetensors').write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(CheckpointError, match='corrupt or truncated'): load_checkpoint(tmp_path / 'noise.safetensors')
    from safetensors.torch import save_file
    save_file({'w': torch.zeros(2)}, str(tmp_path / 'foreign.safetensors'))
    with pytest.raises(CheckpointError, match='not an invdiff_nb checkpoint'): load_checkpoint(tmp_path / 'foreign.safetensors')
    with pytest.raises(CheckpointError, match=r"differs in \['steps'\]"): load_checkpoint(p, expected_config=Outer(steps=4))


def test_load_or_train_caches_and_survives_a_corrupt_entry(tmp_path):
    calls = []
    def train(m): calls.append(1); torch.nn.init.constant_(m.weight, 0.25)
    m1, l1 = load_or_train(torch.nn.Linear(2, 2), 'demo', Outer(), 0, train, root=tmp_path, verbose=False)
    m2, l2 = load_or_train(torch.nn.Linear(2, 2), 'demo', Outer(), 0, train, root=tmp_path, verbose=False)
    assert (l1, l2) == (False, True) and len(calls) == 1 and torch.equal(m1.weight, m2.weight)
    _, l3 = load_or_train(torch.nn.Linear(2, 2), 'demo', Outer(steps=4), 0, train, root=tmp_path, verbose=False)
    assert not l3 and len(calls) == 2, 'another config must not load the cached weights'
    (entry,) = [p for p in tmp_path.glob('demo-*-s0.safetensors') if load_checkpoint(p).config['steps'] == 3]
    entry.write_bytes(b'garbage')
    _, l4 = load_or_train(torch.nn.Linear(2, 2), 'demo', Outer(), 0, train, root=tmp_path, verbose=False)
    assert not l4 and len(calls) == 3


def test_load_or_train_uses_the_env_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('INVDIFF_CACHE', str(tmp_path / 'cache'))
    load_or_train(torch.nn.Linear(2, 2), 'envdemo', Outer(), 1, lambda m: None, verbose=False)
    assert len(list((tmp_path / 'cache').glob('envdemo-*-s1.safetensors'))) == 1


def test_results_round_trip_and_bad_values(tmp_path):
    write_results(tmp_path, {'a': torch.tensor(2.5), 'b': np.int64(3), 'c': float('nan'), 'l': [1, 2]}, 'smoke', 4)
    r = read_results(write_results(tmp_path, {'d': 'x'}, 'smoke', 4).parent)
    assert r == {'a': 2.5, 'b': 3, 'c': None, 'l': [1, 2], 'd': 'x', 'profile': 'smoke', 'seed': 4,
                 'version': invdiff_nb.__version__}
    write_results(tmp_path, {'e': 1}, 'smoke', 4, update=False)
    assert set(read_results(tmp_path)) == {'e', 'profile', 'seed', 'version'}
    with pytest.raises(TypeError, match='flat lists only'): write_results(tmp_path, {'bad': {'x': 1}}, 'smoke', 0)
    with pytest.raises(TypeError, match='tensor with 2 elements'): write_results(tmp_path, {'t': torch.ones(2)}, 'smoke', 0)
    with pytest.raises(FileNotFoundError, match='no results.json'): read_results(tmp_path / 'nothing')


def test_image_grid():
    g = image_grid(torch.zeros(5, 1, 4, 4), nrow=3)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1) and g.min() >= 0 and g.max() <= 1
    assert image_grid(torch.ones(2, 3, 2, 2), nrow=2).shape == (1 * 3 + 1, 2 * 3 + 1, 3)
    with pytest.raises(ValueError, match='expects'): image_grid(torch.zeros(2, 2, 2, 2, 2))


def test_preset_eval_mode_batched():
    from invdiff_nb.core import PROFILES, preset, eval_mode, batched
    assert preset(PROFILES, 'cpu', n_seeds=3).n_seeds == 3 and PROFILES['cpu'].n_seeds == 1
    with pytest.raises(KeyError, match="unknown profile 'huge'"): preset(PROFILES, 'huge')
    with pytest.raises(ValueError, match=r"has no field\(s\) \['n_seed'\]"): preset(PROFILES, 'cpu', n_seed=3)
    m = torch.nn.Dropout(0.5).train()
    with pytest.raises(RuntimeError):
        with eval_mode(m):
            assert not m.training; raise RuntimeError('x')
    assert m.training
    with eval_mode(lambda x: x) as f: assert f(1) == 1                  # a plain function passes through
    x = torch.arange(7.)[:, None]
    assert torch.equal(batched(lambda b: b + 1, x, 2), x + 1)
    with pytest.raises(ValueError, match='batch_size must be a positive int'): batched(lambda b: b, x, 0)
    with pytest.raises(ValueError, match='no samples'): batched(lambda b: b, x[:0], 2)
