"Unit tests of invdiff_nb.data: toy ring, digits (shapes, range, stratified deterministic split), random_batches."
import pytest
import torch
from invdiff_nb.data import toy_ring, digits, stratified_split, random_batches


def test_toy_ring():
    g = torch.Generator().manual_seed(0)
    x, y = toy_ring(2000, g, n_modes=6, radius=3.0, std=0.01)
    assert x.shape == (2000, 2) and x.dtype == torch.float32 and y.dtype == torch.long and set(y.tolist()) == set(range(6))
    theta = 2 * torch.pi * y.float() / 6
    centres = 3.0 * torch.stack([theta.cos(), theta.sin()], 1)
    assert (x - centres).abs().max() < 0.1          # 10 standard deviations
    a, b = toy_ring(10, torch.Generator().manual_seed(3)), toy_ring(10, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match='positive int'): toy_ring(-1)
    with pytest.raises(ValueError, match='radius'): toy_ring(5, radius=0)


@pytest.mark.parametrize('size', [8, 16, 32])
def test_digits_shapes_range_split(size):
    xtr, ytr = digits(size, 'train'); xte, yte = digits(size, 'test'); xall, yall = digits(size, 'all')
    assert xtr.shape == (len(ytr), 1, size, size) and xtr.dtype == torch.float32 and ytr.dtype == torch.long
    assert len(ytr) + len(yte) == len(yall) == 1797
    assert xall.min() >= -1 and xall.max() <= 1
    tr, te = stratified_split(yall, 0.2, 0)
    assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == 1797
    assert torch.equal(xall[te], xte) and torch.equal(yall[tr], ytr)
    per_class, n_test = torch.bincount(yall, minlength=10), torch.bincount(yte, minlength=10)
    assert ((n_test - 0.2 * per_class).abs() <= 0.5 + 1e-9).all()


def test_digits_deterministic_and_seeded():
    assert torch.equal(digits(16, 'test', seed=3)[1], digits(16, 'test', seed=3)[1])
    torch.manual_seed(123)   # the global RNG must not matter
    a = digits(16, 'test', seed=0)[0]; torch.manual_seed(7); b = digits(16, 'test', seed=0)[0]
    assert torch.equal(a, b)
    assert not torch.equal(stratified_split(digits(8, 'all')[1], 0.2, 0)[1], stratified_split(digits(8, 'all')[1], 0.2, 1)[1])
    assert len(digits(16, 'test', test_frac=0.5)[1]) in range(890, 910)


def test_digits_bad_input():
    with pytest.raises(ValueError, match="unknown split 'valid'.*'train', 'test', 'all'"): digits(16, 'valid')
    with pytest.raises(ValueError, match=r'size must be an int in \[8, 256\]'): digits(7)
    with pytest.raises(ValueError, match='size must be an int'): digits('16')
    with pytest.raises(ValueError, match='size must be an int'): digits(1000)
    with pytest.raises(ValueError, match='test_frac'): digits(16, test_frac=0)


def test_random_batches():
    x, y = torch.arange(20.).reshape(10, 2), torch.arange(10)
    gb = random_batches(x, y, batch_size=4)
    xb, yb = gb(0, torch.Generator().manual_seed(0))
    assert xb.shape == (4, 2) and torch.equal(xb[:, 0] / 2, yb.float())       # rows stay paired
    xb2, yb2 = gb(7, torch.Generator().manual_seed(0))
    assert torch.equal(yb, yb2)
    g = torch.Generator().manual_seed(1)
    seen = torch.cat([gb(i, g)[1] for i in range(200)])
    assert set(seen.tolist()) == set(range(10))
    (only,) = random_batches(x, batch_size=3)(0, None)
    assert only.shape == (3, 2)
    with pytest.raises(ValueError, match='first dimension'): random_batches(x, y[:5], batch_size=2)
    with pytest.raises(ValueError, match='batch_size'): random_batches(x, batch_size=0)
    with pytest.raises(ValueError, match='at least one'): random_batches(batch_size=2)


def test_ring_mode_stats():
    from invdiff_nb.data import ring_centres, ring_mode_stats, toy_ring
    x, y = toy_ring(2000, torch.Generator().manual_seed(0))
    st = ring_mode_stats(x)
    assert st['modes_covered'] == 8 and st['off_mode_share'] == 0 and torch.equal(st['mode'], y)
    assert abs(sum(st['shares']) - 1) < 1e-6 and sum(st['counts']) == 2000
    torch.testing.assert_close(ring_centres(4, 1.0), torch.tensor([[1., 0], [0, 1], [-1, 0], [0, -1]]), atol=1e-6, rtol=0)
    # all points in one mode: one covered, the others empty; points at the centre of the ring are on no mode
    one = ring_mode_stats(x[y == 0])
    assert one['modes_covered'] == 1 and one['share_max'] == 1 and one['share_min'] == 0
    assert ring_mode_stats(torch.zeros(10, 2))['off_mode_share'] == 1
    # a mode with a tenth of its fair share is not covered (min_share = 1/4 of the fair share)
    keep = (y != 5) | (torch.arange(2000) % 10 == 0)
    assert ring_mode_stats(x[keep])['modes_covered'] == 7
    with pytest.raises(ValueError, match=r'must be \(n, 2\)'): ring_mode_stats(torch.zeros(4, 3))
