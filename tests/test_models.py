"Fast unit tests of invdiff_nb.models: shapes, embeddings, null class, bad inputs, the diffusers adapter."
import json
import pytest
import torch
from torch import nn

from invdiff_nb.models import (UNet, UNetConfig, DiffusersUNet, count_params, as_timesteps, timestep_embedding,
                               unet_config, UNET_PRESETS, ResBlock, SelfAttention)

torch.set_num_threads(1)
SMALL = dict(image_size=16, base_channels=8, channel_mults=(1, 2), attn_resolutions=(8,), dropout=0.0, norm_groups=4)


def _randomise(net):
    "Give the zero-initialised layers random weights so outputs are not trivially 0."
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d): m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
    return net.eval()


@pytest.fixture(scope='module')
def cond_net():
    torch.manual_seed(0)
    return _randomise(UNet(UNetConfig(**SMALL, num_classes=3)))


def test_shapes_and_zero_init():
    net = UNet(UNetConfig(**SMALL))
    x = torch.randn(3, 1, 16, 16)
    out = net(x, 5)
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))
    net2 = UNet(UNetConfig(**SMALL, in_channels=3, out_channels=6))
    assert net2(torch.randn(2, 3, 16, 16), torch.tensor([0, 999])).shape == (2, 6, 16, 16)


def test_timestep_forms_agree(cond_net):
    x, y = torch.randn(2, 1, 16, 16), torch.tensor([0, 2])
    a = cond_net(x, 7, y)
    torch.testing.assert_close(a, cond_net(x, torch.tensor(7), y))
    torch.testing.assert_close(a, cond_net(x, torch.tensor([7, 7]), y))
    assert not torch.allclose(a, cond_net(x, torch.tensor([7, 600]), y))


def test_null_class_and_class_effect(cond_net):
    x = torch.randn(2, 1, 16, 16)
    assert cond_net.null_class == 3
    torch.testing.assert_close(cond_net(x, 3), cond_net(x, 3, torch.tensor([3, 3])))
    assert not torch.allclose(cond_net(x, 3, torch.tensor([0, 0])), cond_net(x, 3, torch.tensor([1, 1])))
    assert UNet(UNetConfig(**SMALL)).null_class is None


def test_batch_independence(cond_net):
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(cond_net(x[2:3], 9, y[2:3]), cond_net(x, 9, y)[2:3], atol=1e-5, rtol=1e-5)


def test_timestep_embedding_matches_diffusers():
    from diffusers.models.embeddings import get_timestep_embedding
    t = torch.tensor([0, 3, 999])
    torch.testing.assert_close(timestep_embedding(t, 32), get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0))


def test_blocks_start_as_identity():
    blk = ResBlock(8, 8, 16, groups=4)
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(blk(x, torch.randn(2, 16)), x)
    att = SelfAttention(8, num_heads=2, groups=4)
    torch.testing.assert_close(att(x), x)


@pytest.mark.parametrize('make_input, exc, msg', [
    (lambda: (torch.randn(1, 16, 16), 0, None), ValueError, r'\(B, C, H, W\)'),
    (lambda: (torch.randn(2, 3, 16, 16), 0, None), ValueError, 'in_channels=1'),
    (lambda: (torch.randn(2, 1, 15, 16), 0, None), ValueError, 'divisible by 2'),
    (lambda: (torch.randn(2, 1, 16, 16), 1000, None), ValueError, r'\[0, 999\]'),
    (lambda: (torch.randn(2, 1, 16, 16), torch.tensor([-1, 0]), None), ValueError, r'\[0, 999\]'),
    (lambda: (torch.randn(2, 1, 16, 16), torch.zeros(3, dtype=torch.long), None), ValueError, r'shape \(2,\)'),
    (lambda: (torch.randn(2, 1, 16, 16), torch.zeros(2, 1, dtype=torch.long), None), ValueError, r'shape \(2,\)'),
    (lambda: (torch.randn(2, 1, 16, 16), '3', None), TypeError, 'int or a tensor'),
    (lambda: (torch.randn(2, 1, 16, 16), 0, torch.tensor([0, 4])), ValueError, r'\[0, 3\]'),
    (lambda: (torch.randn(2, 1, 16, 16), 0, torch.tensor([0, -1])), ValueError, r'\[0, 3\]'),
    (lambda: (torch.randn(2, 1, 16, 16), 0, torch.tensor([0, 1, 2])), ValueError, r'shape \(2,\)'),
    (lambda: (torch.randn(2, 1, 16, 16), 0, torch.zeros(2)), TypeError, 'integer class labels'),
])
def test_bad_inputs(cond_net, make_input, exc, msg):
    x, t, c = make_input()
    with pytest.raises(exc, match=msg): cond_net(x, t, c)


def test_cond_to_unconditional_model():
    with pytest.raises(ValueError, match='unconditional'): UNet(UNetConfig(**SMALL))(torch.randn(2, 1, 16, 16), 0, torch.tensor([0, 1]))


@pytest.mark.parametrize('kw, msg', [
    (dict(image_size=18, channel_mults=(1, 2, 2)), 'divisible by 4'),
    (dict(attn_resolutions=(2,)), 'levels are'),
    (dict(base_channels=12), 'GroupNorm groups'),
    (dict(num_classes=0), 'num_classes'),
    (dict(dropout=1.0), 'dropout'),
])
def test_bad_configs(kw, msg):
    with pytest.raises(ValueError, match=msg): UNet(UNetConfig(**{**dict(image_size=16, base_channels=16, attn_resolutions=()), **kw}))


def test_config_roundtrip_and_presets():
    c = unet_config('cpu', num_classes=10)
    assert UNetConfig.from_json(c.to_json()) == c and c.num_classes == 10
    assert json.loads(c.to_json())['channel_mults'] == list(c.channel_mults)
    with pytest.raises(KeyError, match='unknown UNet preset'): unet_config('tpu')
    assert set(UNET_PRESETS) == {'smoke', 'cpu', 'gpu'}
    n = count_params(UNet(unet_config('cpu', num_classes=10)))
    assert 300_000 <= n <= 1_500_000, n


def test_count_params():
    net = nn.Linear(3, 2)
    assert count_params(net) == 8
    net.bias.requires_grad_(False)
    assert count_params(net, trainable_only=True) == 6 and count_params(net) == 8


def test_as_timesteps():
    assert as_timesteps(4, 3, 10).tolist() == [4, 4, 4]
    assert as_timesteps(torch.tensor([1.5, 2.0]), 2, 10).dtype.is_floating_point
    assert as_timesteps(12, 2, None).tolist() == [12, 12]


def test_backward_reaches_all_params():
    net = UNet(UNetConfig(**SMALL, num_classes=3))
    out = net(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]), torch.tensor([0, 3]))
    (out - 1).pow(2).mean().backward()
    # with zero-init output, only the output conv gets a gradient on the first step; it must exist though
    assert net.out[-1].weight.grad is not None and net.out[-1].weight.grad.abs().sum() > 0


# ---- diffusers adapter -------------------------------------------------------------------------------------
TINY = dict(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4)


@pytest.fixture(scope='module')
def tiny_diffusers():
    from diffusers import UNet2DModel, UNet2DConditionModel
    torch.manual_seed(0)
    plain = UNet2DModel(**TINY, down_block_types=('DownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'UpBlock2D')).eval()
    cls = UNet2DModel(**TINY, down_block_types=('DownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'UpBlock2D'),
                      num_class_embeds=4).eval()
    txt = UNet2DConditionModel(**TINY, down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
                               up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D'), cross_attention_dim=12, attention_head_dim=4).eval()
    return plain, cls, txt


def test_adapter_matches_raw_calls(tiny_diffusers):
    plain, cls, txt = tiny_diffusers
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([5, 900])
    with torch.no_grad():
        assert torch.equal(DiffusersUNet(plain)(x, t), plain(x, t).sample)
        lab = torch.tensor([0, 2])
        m = DiffusersUNet(cls, null_class=3)
        assert torch.equal(m(x, t, lab), cls(x, t, class_labels=lab).sample)
        assert torch.equal(m(x, t), cls(x, t, class_labels=torch.tensor([3, 3])).sample) and m.null_class == 3
        assert torch.equal(m(x, 5, lab), cls(x, torch.tensor([5, 5]), class_labels=lab).sample)
        e = torch.randn(2, 7, 12)
        assert torch.equal(DiffusersUNet(txt)(x, t, e), txt(x, t, encoder_hidden_states=e).sample)


def test_adapter_bad_inputs(tiny_diffusers):
    plain, cls, txt = tiny_diffusers
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(TypeError, match='UNet2DModel or UNet2DConditionModel'): DiffusersUNet(nn.Linear(2, 2))
    with pytest.raises(ValueError, match='in_channels=1'): DiffusersUNet(plain)(torch.randn(2, 2, 16, 16), 0)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'): DiffusersUNet(plain)(torch.randn(16, 16), 0)
    with pytest.raises(ValueError, match='divisible by 2'): DiffusersUNet(plain)(torch.randn(2, 1, 15, 15), 0)
    with pytest.raises(ValueError, match=r'\[0, 999\]'): DiffusersUNet(plain)(x, 1000)
    with pytest.raises(ValueError, match='no class embedding'): DiffusersUNet(plain)(x, 0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='null class'): DiffusersUNet(cls, null_class=4)
    with pytest.raises(ValueError, match='no null_class'): DiffusersUNet(cls)(x, 0)
    with pytest.raises(ValueError, match=r'\[0, 3\]'): DiffusersUNet(cls)(x, 0, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match='encoder_hidden_states'): DiffusersUNet(txt)(x, 0)
    with pytest.raises(ValueError, match='encoder_hidden_states'): DiffusersUNet(txt)(x, 0, torch.randn(2, 7, 5))
    with pytest.raises(ValueError, match='null class'): DiffusersUNet(plain, null_class=0)


def test_save_pretrained_round_trip_and_clear_mismatch(tmp_path):
    "save_pretrained / from_pretrained round-trip a UNet; weights saved for another config fail with the differing shapes named."
    from invdiff_nb.core import CheckpointError, load_weights, save_checkpoint, load_checkpoint
    from invdiff_nb.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
    torch.manual_seed(0)
    net = UNet(unet_config('smoke', num_classes=3))
    back = UNet.from_pretrained(net.save_pretrained(tmp_path / 'unet'))
    assert back.config == net.config and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    assert sorted(p.name for p in (tmp_path / 'unet').iterdir()) == ['config.json', 'model.safetensors']
    with pytest.raises(CheckpointError, match='holds a UNet, not a NoisyClassifier'): NoisyClassifier.from_pretrained(tmp_path / 'unet')
    with pytest.raises(FileNotFoundError, match='no config.json'): UNet.from_pretrained(tmp_path / 'nothing')
    # a checkpoint of the smoke UNet loaded into the cpu UNet, without expected_config: a clear error, not torch's
    path = save_checkpoint(tmp_path / 'smoke.safetensors', {'model': net.state_dict()}, net.config, step=0, seed=0)
    other = UNet(unet_config('cpu', num_classes=3))
    with pytest.raises(CheckpointError, match=r'does not fit this UNet: (missing|unexpected|shapes differ).*build the model with the config'):
        load_weights(other, load_checkpoint(path).state['model'], str(path))
    clf = NoisyClassifier(NoisyClassifierConfig(image_size=8, num_classes=2, base_channels=8, channel_mults=(1, 2), norm_groups=4))
    assert NoisyClassifier.from_pretrained(clf.save_pretrained(tmp_path / 'clf')).config == clf.config
