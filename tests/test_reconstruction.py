"Unit tests for invdiff_nb.reconstruction: the masked Fourier operator, k-space masks, zero-filled / L2 / TV reconstructions, bad inputs."
import math

import pytest
import torch

from invdiff_nb.core import make_generator
from invdiff_nb.reconstruction import (FourierOp, _div, _grad, fourier_mask, l2_reconstruction, symmetric_mask, tv_reconstruction)

torch.set_num_threads(1)
N = 16


def _x(seed=0, n=4): return torch.rand(n, 1, N, N, generator=make_generator(seed)) * 2 - 1


@pytest.mark.parametrize('kind', ['random', 'radial'])
@pytest.mark.parametrize('acc', [2, 4, 8])
def test_masks_symmetric_with_the_asked_acceleration(kind, acc):
    m = fourier_mask(N, acc, kind, make_generator(acc))
    assert m.dtype == torch.bool and m.shape == (N, N) and torch.equal(m, symmetric_mask(m)) and m[0, 0]
    got = FourierOp(m).acceleration
    if kind == 'random': assert abs(got - acc) / acc < 0.05
    else: assert 1 < got and abs(math.log(got / acc)) < math.log(2)        # spokes: the nearest count the grid allows
    assert torch.equal(m, fourier_mask(N, acc, kind, make_generator(acc)))  # seeded


def test_fourier_projection_exact_real_and_orthogonal():
    op = FourierOp(fourier_mask(N, 4, 'random', make_generator(0)))
    x, z = _x(0), _x(1)
    y = op.forward(x); p = op.project(z, y)
    assert not p.is_complex() and (op.forward(p) - y).abs().max() < 1e-5 and (op.project(p, y) - p).abs().max() < 1e-5
    assert torch.fft.ifft2(y, norm='ortho').imag.abs().max() < 1e-5        # a symmetric mask keeps A+ y real
    v = _x(2); null = v - op.pinv(op.forward(v))
    assert abs(((z - p) * null).sum()) < 1e-4
    full = FourierOp(torch.ones(N, N, dtype=torch.bool))
    assert (full.pinv(full.forward(x)) - x).abs().max() < 1e-5


def test_grad_and_div_are_adjoint():
    x, p = _x(0), torch.randn(2, 4, 1, N, N, generator=make_generator(1))
    assert abs((_grad(x) * p).sum() + (x * _div(p)).sum()) < 1e-4          # <grad x, p> = -<x, div p>


def test_l2_solves_its_normal_equations():
    op = FourierOp(fourier_mask(N, 4, 'random', make_generator(0))); y = op.forward(_x())
    for lam in (0.01, 0.3):
        x = l2_reconstruction(op, y, lam).requires_grad_(True)
        loss = 0.5 * (op.forward(x) - y).abs().pow(2).sum() + lam / 2 * _grad(x).pow(2).sum()
        assert torch.autograd.grad(loss, x)[0].abs().max() < 1e-4


def test_tv_lowers_its_objective_below_zero_filled_and_l2():
    op = FourierOp(fourier_mask(N, 4, 'random', make_generator(0))); y = op.forward(_x())
    lam = 0.05
    obj = lambda x: 0.5 * (op.forward(x) - y).abs().pow(2).sum().item() + lam * _grad(x).pow(2).sum(0).sqrt().sum().item()
    x_tv = tv_reconstruction(op, y, lam, 300)
    assert obj(x_tv) < obj(op.pinv(y)) and obj(x_tv) < obj(l2_reconstruction(op, y, lam))
    assert obj(tv_reconstruction(op, y, lam, 600)) <= obj(x_tv) + 1e-3 * obj(x_tv)   # converged: more iterations do not help much


def test_bad_inputs():
    m = fourier_mask(N, 4, 'random', make_generator(0))
    for a in (1, 0.5, -2, True):
        with pytest.raises(ValueError, match='acceleration must be a number > 1'): fourier_mask(N, a)
    with pytest.raises(ValueError, match="'random' or 'radial'"): fourier_mask(N, 4, 'spiral')
    with pytest.raises(TypeError, match='2-D boolean'): FourierOp(m.float())
    with pytest.raises(TypeError, match='2-D boolean'): FourierOp(m[None])
    asym = torch.zeros(N, N, dtype=torch.bool); asym[1, 2] = True
    with pytest.raises(ValueError, match='keep -k'): FourierOp(asym)
    with pytest.raises(ValueError, match='do not match'): FourierOp(m).forward(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match='maps images of shape'): FourierOp(m).check_measurement(torch.zeros(1, 1, 8, 8), (1, 1, N, N))
    with pytest.raises(ValueError, match='lam must be > 0'): tv_reconstruction(FourierOp(m), FourierOp(m).forward(_x()), 0.0)
