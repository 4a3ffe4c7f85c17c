"""invdiff_nb.features: activations by name through forward hooks (our UNet and diffusers UNets), per-pixel DDPM
features, the MLP ensemble head, mIoU and the UNet segmenter."""
import math

import pytest
import torch
from torch import nn

from invdiff_nb.ddpm import GaussianScheduler
from invdiff_nb.models import DiffusersUNet, UNet, unet_config
from invdiff_nb.features import (ActivationRecorder, PixelHeadConfig, PixelMLPEnsemble, Segmenter, collect_activations,
                                 confusion_matrix, ddpm_activations, decoder_layers, dihedral, fit_pixel_head,
                                 fit_segmenter, mean_iou, pixel_features, predict_masks, segment)


@pytest.fixture(scope='module')
def unet():
    torch.manual_seed(0)
    m = UNet(unet_config('smoke', in_channels=3, num_train_timesteps=100)).eval()
    for p in m.out.parameters(): nn.init.normal_(p, std=0.1)         # a non-zero output
    return m


@pytest.fixture(scope='module')
def diffusers_unet():
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    tiny = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=('DownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'UpBlock2D'), norm_num_groups=4)
    return DiffusersUNet(tiny, num_train_timesteps=100).eval()


def test_decoder_layers_and_last_block_gives_the_output(unet, diffusers_unet):
    x = torch.randn(3, 3, 16, 16)
    layers = decoder_layers(unet)
    assert layers == ['up.0', 'up.1', 'up.3', 'up.4']               # the smoke preset: two levels, Upsample at up.2 skipped
    acts = collect_activations(unet, x, 7, layers)
    assert [a.shape[-1] for a in acts.values()] == [8, 8, 16, 16]
    with torch.no_grad(): assert torch.allclose(unet.out(acts['up.4']), unet(x, 7), atol=1e-6)
    d_layers = decoder_layers(diffusers_unet)
    assert d_layers == ['unet.up_blocks.0', 'unet.up_blocks.1']
    d = collect_activations(diffusers_unet, x, 7, d_layers)
    u = diffusers_unet.unet
    with torch.no_grad(): assert torch.allclose(u.conv_out(u.conv_act(u.conv_norm_out(d[d_layers[-1]]))), diffusers_unet(x, 7), atol=1e-6)
    assert decoder_layers(u) == ['up_blocks.0', 'up_blocks.1']      # a bare diffusers UNet too


def test_tuple_outputs_and_hooks_removed(unet, diffusers_unet):
    x = torch.randn(2, 3, 16, 16)
    a = collect_activations(diffusers_unet, x, 3, ['unet.down_blocks.0'])     # diffusers down blocks return (hidden, skips)
    assert isinstance(a['unet.down_blocks.0'], torch.Tensor) and a['unet.down_blocks.0'].shape[1] == 8
    with pytest.raises(ValueError):                                            # an error inside the forward pass ...
        collect_activations(unet, torch.randn(2, 4, 16, 16), 3, ['up.0'])
    assert all(len(m._forward_hooks) == 0 for m in unet.modules())            # ... leaves no hook behind
    rec = ActivationRecorder(unet, 'mid.1')
    with rec: unet(x, 3)
    assert rec.acts['mid.1'].shape == (2, 32, 8, 8) and len(unet.mid[1]._forward_hooks) == 0


def test_bad_layers_and_timesteps(unet, diffusers_unet):
    x = torch.randn(2, 3, 16, 16)
    sched = GaussianScheduler(num_train_timesteps=100)
    with pytest.raises(KeyError, match=r"no layer\(s\) \['up.9'\]"): collect_activations(unet, x, 3, ['up.9'])
    with pytest.raises(KeyError, match='has no layer'): collect_activations(diffusers_unet, x, 3, ['up_blocks.0'])   # wrapped: unet. prefix
    with pytest.raises(ValueError, match='at least one layer'): ActivationRecorder(unet, [])
    for bad in (100, -1, 2.5):
        with pytest.raises(ValueError, match=r'ints in \[0, 99\]'): ddpm_activations(unet, sched, x, ['up.0'], [bad])
    with pytest.raises(ValueError): collect_activations(unet, x, 100, ['up.0'])                 # the UNet's own range check
    with pytest.raises(ValueError, match='no decoder blocks'): decoder_layers(nn.Sequential(nn.Linear(2, 2)))


def test_ddpm_activations_do_not_depend_on_the_batch(unet):
    sched = GaussianScheduler(num_train_timesteps=100)
    x = torch.randn(5, 3, 16, 16)
    a = ddpm_activations(unet, sched, x, ['up.1', 'up.4'], [0, 50], seed=3, batch_size=2)
    b = ddpm_activations(unet, sched, x, ['up.1', 'up.4'], [0, 50], seed=3, batch_size=5)
    c = ddpm_activations(unet, sched, x, ['up.1'], [50], seed=4, batch_size=5)
    assert set(a) == {(0, 'up.1'), (0, 'up.4'), (50, 'up.1'), (50, 'up.4')}
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not torch.allclose(a[(50, 'up.1')], c[(50, 'up.1')])               # the seed sets the noise
    f = pixel_features(a, [(0, 'up.1'), (50, 'up.4')], 16)
    assert f.shape == (5, 32 + 16, 16, 16) and torch.equal(f[:, 32:], a[(50, 'up.4')])   # full-resolution layers are copied
    with pytest.raises(KeyError, match='no activations'): pixel_features(a, [(7, 'up.1')], 16)


def test_mean_iou_by_hand():
    t = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    p = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm = confusion_matrix(p, t, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    m, iou = mean_iou(p, t, 4)
    assert torch.allclose(iou[:3], torch.tensor([2 / 4, 2 / 3, 2 / 3], dtype=torch.float64)) and math.isnan(iou[3])
    assert abs(m - (0.5 + 4 / 3) / 3) < 1e-12 and mean_iou(t, t, 3)[0] == 1.0
    with pytest.raises(ValueError, match='differ in shape'): mean_iou(p[:, :3], t, 4)
    with pytest.raises(ValueError, match=r'lie in \[0, 1\]'): confusion_matrix(p, t, 2)
    with pytest.raises(ValueError, match='num_classes must be an int >= 1'): confusion_matrix(p, t, 0)


def _toy_pixels(n=16, seed=0):
    "Features whose channel 0 decides the label (label = 1 where f0 > 0, 2 where f0 > 1), plus noise channels."
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, 4, 8, 8, generator=g)
    y = (f[:, 0] > 0).long() + (f[:, 0] > 1).long()
    return f, y


def test_pixel_head_learns():
    f, y = _toy_pixels()
    cfg = PixelHeadConfig(4, 3, hidden=(16, 8), n_models=3)
    head = fit_pixel_head(f, y, cfg, steps=150, batch_size=256, lr=3e-3, seed=0, device='cpu')
    ft, yt = _toy_pixels(seed=1)
    acc = (predict_masks(head, ft) == yt).float().mean().item()
    untrained = PixelMLPEnsemble(cfg).eval()
    acc0 = (predict_masks(untrained, ft) == yt).float().mean().item()
    assert acc > 0.95 and acc0 < 0.8, (acc, acc0)
    probs = head(ft[:2])
    assert probs.shape == (2, 3, 8, 8) and torch.allclose(probs.sum(1), torch.ones(2, 8, 8), atol=1e-5)


def test_pixel_head_bad_inputs():
    with pytest.raises(ValueError, match='num_classes must be an int >= 1'): PixelHeadConfig(4, 0)
    with pytest.raises(ValueError, match='n_models'): PixelHeadConfig(4, 2, n_models=0)
    f, y = _toy_pixels()
    with pytest.raises(ValueError, match='to match the images'): fit_pixel_head(f, y[:, :4], PixelHeadConfig(4, 3))
    with pytest.raises(ValueError, match='channels'): fit_pixel_head(f, y, PixelHeadConfig(5, 3))
    with pytest.raises(ValueError, match=r'lie in \[0, 1\]'): fit_pixel_head(f, y, PixelHeadConfig(4, 2))
    with pytest.raises(ValueError, match='features must be'): PixelMLPEnsemble(PixelHeadConfig(4, 3))(f[:, :3])


def test_dihedral_group():
    x = torch.arange(16.).view(1, 4, 4)
    images = [dihedral(x, k) for k in range(8)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    assert torch.equal(dihedral(dihedral(x, 1), 3), x) and torch.equal(dihedral(dihedral(x, 4), 4), x)


def test_segmenter_learns_a_toy_task():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 16, 16, generator=g) * 2 - 1
    y = (x[:, 0] > x[:, 1]).long()                                             # a per-pixel rule on two channels
    torch.manual_seed(0)
    seg = Segmenter(UNet(unet_config('smoke', in_channels=3, out_channels=2, dropout=0.0)))
    before = mean_iou(segment(seg, x), y, 2)[0]
    res = fit_segmenter(seg, x, y, steps=120, batch_size=16, lr=5e-3, seed=0, device='cpu')
    after = mean_iou(segment(seg, x), y, 2)[0]
    assert res.losses[-1] < 0.5 * res.losses[0] and after > 0.85 and after > before + 0.3, (before, after, res.losses[::20])
    with pytest.raises(ValueError, match='to match the images'): fit_segmenter(seg, x, y[:4], steps=1)
