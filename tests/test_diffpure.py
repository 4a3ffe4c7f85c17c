"Unit tests for invdiff_nb.diffpure: PGD-linf, loss gradients with EOT, the purifier, BPDA."
import pytest
import torch
from torch import nn

from invdiff_nb.core import make_generator
from invdiff_nb.ddpm import GaussianScheduler
from invdiff_nb.diffpure import Purifier, bpda_eot_gradient, loss_gradient, pgd_linf

torch.set_num_threads(1)
T = 50


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def _data(seed=0, n=6):
    g = make_generator(seed)
    return torch.rand(n, 1, 8, 8, generator=g) * 1.6 - 0.8, torch.randint(0, 3, (n,), generator=g)


def test_pgd_stays_in_the_ball_and_range_and_raises_the_loss():
    clf = _linear(); x, y = _data()
    ce = lambda xx: nn.functional.cross_entropy(clf(xx), y).item()
    adv = pgd_linf(loss_gradient(clf), x, y, 0.1, 0.02, 20, make_generator(0))
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= -1 and adv.max() <= 1
    assert ce(adv) > ce(x) + 0.01
    assert torch.equal(pgd_linf(loss_gradient(clf), x, y, 0.0, 0.02, 5, make_generator(0)), x)


def test_pgd_reaches_the_worst_case_of_a_binary_linear_model():
    "For logit differences linear in x the worst case in the ball is a corner: x + eps * sign of the loss gradient."
    torch.manual_seed(1)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)); x, _ = _data(1); y = torch.zeros(len(x), dtype=torch.long)
    w = (clf[1].weight[1] - clf[1].weight[0]).detach().view(1, 1, 8, 8)
    best = x + 0.05 * w.sign()
    adv = pgd_linf(loss_gradient(clf), x, y, 0.05, 0.01, 30, random_start=False)
    assert (adv - best).abs().max() < 1e-6


def test_loss_gradient_matches_finite_differences_and_averages_eot():
    clf = _linear(); x, y = _data()
    g = loss_gradient(clf)(x, y)
    v, h = torch.randn(x.shape, generator=make_generator(3)), 1e-3
    ce = lambda xx: nn.functional.cross_entropy(clf(xx), y, reduction='sum').item()
    assert abs((g * v).sum().item() - (ce(x + h * v) - ce(x - h * v)) / (2 * h)) < 1e-2
    flips = iter([1.0, -1.0])                                   # a random defence: x or -x; EOT averages the two gradients
    fn = lambda xx: clf(next(flips) * xx)
    g2 = loss_gradient(fn, n_eot=2)(x, y)
    ref = (loss_gradient(clf)(x, y) - loss_gradient(clf)(-x, y)) / 2
    assert (g2 - ref).abs().max() < 1e-5


def _oracle(x0, sch):
    def eps(x_t, t, cond=None):
        ab = sch.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    return eps


def test_purifier_with_the_oracle_returns_the_clean_image_and_differentiates():
    sch = GaussianScheduler(num_train_timesteps=T); x0, _ = _data()
    pur = Purifier(_oracle(x0, sch), sch, 20, 5, make_generator(0))
    assert (pur(x0) - x0).abs().max() < 1e-4
    shrink = lambda x_t, t, cond=None: 0.1 * x_t                # a model whose output depends on its input
    xin = (x0 + 0.05).requires_grad_(True)
    out = Purifier(shrink, sch, 20, 5, make_generator(0))(xin, grad=True)
    assert out.requires_grad and torch.autograd.grad(out.sum(), xin)[0].abs().sum() > 0
    assert not pur(x0).requires_grad


def test_bpda_uses_the_classifier_gradient_at_the_purified_image():
    clf = _linear(); x, y = _data()
    shift = lambda xx, grad=False: xx + 0.1                      # a deterministic 'purifier'
    g = bpda_eot_gradient(clf, shift, n_eot=3)(x, y)
    assert (g - loss_gradient(clf)(x + 0.1, y)).abs().max() < 1e-6


def test_bad_inputs():
    clf = _linear(); x, y = _data(); sch = GaussianScheduler(num_train_timesteps=T)
    with pytest.raises(ValueError, match='eps must be >= 0'): pgd_linf(loss_gradient(clf), x, y, -0.1, 0.01, 3)
    with pytest.raises(ValueError, match='step_size >= 0'): pgd_linf(loss_gradient(clf), x, y, 0.1, -0.01, 3)
    for t_star in (-1, T, 3.0):
        with pytest.raises(ValueError, match=r't_star must be an int in \[0, 50\)'): Purifier(clf, sch, t_star)
