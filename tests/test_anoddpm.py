"Unit tests for invdiff_nb.anoddpm: simplex noise, partial diffusion, synthetic anomalies, detection metrics, the training loss."
import pytest
import torch

from invdiff_nb.core import make_generator
from invdiff_nb.ddpm import GaussianScheduler
from invdiff_nb.models import UNet, UNetConfig
from invdiff_nb.train import TrainConfig, fit
from invdiff_nb.anoddpm import (_F2, _G2, _simplex2d, add_anomaly, anomaly_loss, anomaly_map, best_threshold, blob_region,
                                diffuse_and_denoise, dice, make_noise, pixel_auroc, scratch_region, simplex_noise)

torch.set_num_threads(1)
T = 50


def _tables(seed=0):
    g = make_generator(seed)
    ang = torch.arange(16, dtype=torch.float64) * (2 * torch.pi / 16)
    return torch.randperm(256, generator=g), torch.stack([ang.cos(), ang.sin()], 1)


def test_simplex_is_zero_at_the_lattice_and_smooth():
    perm, grads = _tables()
    i, j = torch.meshgrid(torch.arange(-5, 6, dtype=torch.float64), torch.arange(-5, 6, dtype=torch.float64), indexing='ij')
    x, y = i - (i + j) * _G2, j - (i + j) * _G2                              # unskewed lattice corners
    assert _simplex2d(x, y, perm, grads).abs().max() < 1e-9
    u = torch.rand(1000, 2, generator=make_generator(1), dtype=torch.float64) * 20
    a = _simplex2d(u[:, 0], u[:, 1], perm, grads); b = _simplex2d(u[:, 0] + 1e-4, u[:, 1], perm, grads)
    assert (a - b).abs().max() < 1e-2 and a.abs().max() <= 1.5 and a.std() > 0.1


def test_simplex_noise_standardised_seeded_and_low_frequency():
    n = simplex_noise((300, 1, 16, 16), make_generator(0))
    assert n.shape == (300, 1, 16, 16) and n.dtype == torch.float32
    assert n.mean((-2, -1)).abs().max() < 1e-5 and (n.std(dim=(-2, -1)) - 1).abs().max() < 1e-4
    assert torch.equal(n, simplex_noise((300, 1, 16, 16), make_generator(0))) and not torch.equal(n[0], n[1])
    def low_share(z):
        p = torch.fft.fft2(z, norm='ortho').abs().pow(2).mean((0, 1))
        k = torch.fft.fftfreq(16).abs() * 16
        return (p[torch.maximum(k[:, None], k[None]) <= 4].sum() / p.sum()).item()
    assert low_share(n) > low_share(torch.randn(300, 1, 16, 16, generator=make_generator(1))) + 0.1
    with pytest.raises(ValueError, match='scale > 0'): simplex_noise((1, 1, 8, 8), scale=0.0)
    with pytest.raises(ValueError, match='octaves >= 1'): simplex_noise((1, 1, 8, 8), octaves=0)
    assert simplex_noise((2, 1, 8, 8), make_generator(0), scale=1.0).shape == (2, 1, 8, 8)


def _oracle(x0, sch):
    def eps(x_t, t, cond=None):
        ab = sch.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    return eps


@pytest.mark.parametrize('sampler', ['ddpm', 'ddim'])
@pytest.mark.parametrize('kind', ['gaussian', 'simplex'])
def test_partial_diffusion_with_the_oracle_returns_x0(sampler, kind):
    sch = GaussianScheduler(num_train_timesteps=T)
    x0 = torch.rand(3, 1, 16, 16, generator=make_generator(0)) * 2 - 1
    noise = make_noise(kind, x0.shape, make_generator(1))
    for t_star, n in [(12, 5), (T - 1, None), (0, 1)]:
        out = diffuse_and_denoise(_oracle(x0, sch), sch, x0, t_star, n, noise=noise, sampler=sampler, generator=make_generator(2))
        assert (out - x0).abs().max() < 1e-4


def test_partial_diffusion_starts_at_the_noised_input():
    "The first model call sees sqrt(abar) x0 + sqrt(1 - abar) noise at t*."
    sch = GaussianScheduler(num_train_timesteps=T)
    x0, noise, seen = torch.rand(2, 1, 8, 8) * 2 - 1, torch.randn(2, 1, 8, 8), []
    def model(x_t, t, cond=None): seen.append((x_t.clone(), int(t[0]))); return torch.zeros_like(x_t)
    diffuse_and_denoise(model, sch, x0, 20, 3, noise=noise, sampler='ddim')
    assert [t for _, t in seen] == [20, 10, 0]
    assert (seen[0][0] - sch.add_noise(x0, noise, 20)).abs().max() < 1e-6


def test_partial_diffusion_bad_inputs():
    sch, x0 = GaussianScheduler(num_train_timesteps=T), torch.zeros(1, 1, 8, 8)
    model = lambda x, t, c=None: torch.zeros_like(x)
    for t_star in (-1, T, 2.5, True):
        with pytest.raises(ValueError, match=r't_star must be an int in \[0, 50\)'): diffuse_and_denoise(model, sch, x0, t_star)
    with pytest.raises(ValueError, match='num_inference_steps must be in'): diffuse_and_denoise(model, sch, x0, 5, 7)
    with pytest.raises(ValueError, match='must have the shape of x0'): diffuse_and_denoise(model, sch, x0, 5, noise=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="'gaussian' or 'simplex'"): make_noise('perlin', (1, 1, 8, 8))
    with pytest.raises(ValueError, match="'gaussian' or 'simplex'"): anomaly_loss(sch, 'perlin', 10)


def test_anomaly_regions_and_truth():
    g = make_generator(0)
    b = blob_region(16, 3.0, 50, g)
    area = b.flatten(1).sum(1).float()
    assert b.shape == (50, 1, 16, 16) and (area - torch.pi * 9).abs().max() < 10
    s = scratch_region(16, 10, 50, g)
    assert s.flatten(1).sum(1).float().mean() > 8 and s.flatten(1).sum(1).max() < 30
    x = torch.full((50, 1, 16, 16), -1.0); x[..., :, 8:] = 1.0                # the right half is already bright
    xa, gt = add_anomaly(x, b)
    assert torch.equal(gt, b & (x < 0.75)) and torch.equal(xa[b], torch.ones_like(xa[b]))
    with pytest.raises(ValueError, match='boolean mask of the image shape'): add_anomaly(x, b.float())


def test_metrics():
    truth = torch.zeros(2, 1, 4, 4, dtype=torch.bool); truth[0, 0, :2, :2] = True
    perfect = truth.float() + 0.01 * torch.rand(truth.shape, generator=make_generator(0))
    assert pixel_auroc(perfect, truth) == 1.0 and pixel_auroc(-perfect, truth) == 0.0
    assert dice(truth, truth) == 1.0 and dice(~truth, truth) == 0.0
    th = best_threshold(perfect, truth)
    assert dice(perfect > th, truth) == 1.0
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(anomaly_map(x, x), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match='differ in shape'): anomaly_map(x, x[:, :1])


def test_anomaly_loss_trains():
    "A small UNet learns to predict simplex noise: the loss falls (it would not if the optimiser did nothing)."
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), norm_groups=4, dropout=0.0, num_train_timesteps=T))
    sch = GaussianScheduler(num_train_timesteps=T)
    x = torch.rand(32, 1, 16, 16, generator=make_generator(0)).round() * 2 - 1
    res = fit(net, anomaly_loss(sch, 'simplex', 12), lambda step, g: (x,), TrainConfig(steps=100, lr=5e-3, log_every=10), device='cpu', progress=False)
    assert sum(res.losses[-10:]) < 0.9 * sum(res.losses[:10])
