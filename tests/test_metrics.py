"Unit tests for invdiff_nb.metrics: Fréchet distance, precision/recall, class accuracy, the classifier and bad inputs."
import numpy as np
import pytest
import torch

from invdiff_nb.metrics import (ClassifierConfig, DigitClassifier, DigitEvaluator, class_accuracy, digit_classifier_config,
                                frechet_distance, gaussian_frechet, knn_radii, precision_recall, random_shift, sqrtm_psd)


def _gen(seed=0): return torch.Generator().manual_seed(seed)

def _spd(d, g):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_sqrtm_psd_squares_back():
    s = _spd(5, _gen())
    r = sqrtm_psd(s)
    assert torch.allclose(r @ r, s, atol=1e-10) and torch.allclose(r, r.T)


def test_fd_closed_form_diagonal():
    g = _gen(1)
    mu_a, mu_b = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    s_a, s_b = torch.rand(7, generator=g, dtype=torch.float64) + .1, torch.rand(7, generator=g, dtype=torch.float64) + .1
    exact = float(((mu_a - mu_b) ** 2).sum() + ((s_a.sqrt() - s_b.sqrt()) ** 2).sum())
    assert gaussian_frechet(mu_a, torch.diag(s_a), mu_b, torch.diag(s_b)) == pytest.approx(exact, abs=1e-10)


def test_fd_same_gaussian_is_zero_and_symmetric():
    g = _gen(2)
    mu, s = torch.randn(4, generator=g, dtype=torch.float64), _spd(4, g)
    assert abs(gaussian_frechet(mu, s, mu, s)) < 1e-9
    s2 = _spd(4, g)
    assert gaussian_frechet(mu, s, mu + 1, s2) == pytest.approx(gaussian_frechet(mu + 1, s2, mu, s), rel=1e-9)


def test_fd_against_scipy_sqrtm():
    scipy_linalg = pytest.importorskip('scipy.linalg')
    g = _gen(3)
    mu_a, mu_b = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    a, b = _spd(6, g), _spd(6, g)
    ref = float(((mu_a - mu_b) ** 2).sum()) + float(np.trace(a.numpy() + b.numpy() - 2 * scipy_linalg.sqrtm(a.numpy() @ b.numpy()).real))
    assert gaussian_frechet(mu_a, a, mu_b, b) == pytest.approx(ref, rel=1e-8)


def test_fd_from_samples_matches_fit_gaussians():
    g = _gen(4)
    xa, xb = torch.randn(300, 5, generator=g), torch.randn(200, 5, generator=g) * 2 + 1
    xa64, xb64 = xa.double(), xb.double()
    ref = gaussian_frechet(xa64.mean(0), torch.cov(xa64.T), xb64.mean(0), torch.cov(xb64.T))
    assert frechet_distance(xa, xb) == pytest.approx(ref, rel=1e-12)
    assert frechet_distance(xa.numpy(), xb.numpy()) == pytest.approx(ref, rel=1e-12)   # numpy input too


def test_fd_bad_inputs():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match='feature dims differ'): frechet_distance(x, torch.randn(10, 3))
    with pytest.raises(ValueError, match='at least 2 samples'): frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match='2-D array'): frechet_distance(x[0], x)
    with pytest.raises(ValueError, match='NaN or inf'): frechet_distance(torch.full((3, 4), float('inf')), x)


def _two_modes(g, n=200):
    a = 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64) + torch.tensor([6., 0.], dtype=torch.float64)
    return a, b


def test_knn_radii_excludes_self():
    x = torch.tensor([[0.], [1.], [3.], [6.]], dtype=torch.float64)
    assert knn_radii(x, k=1).tolist() == [1., 1., 2., 3.]
    assert knn_radii(x, k=2).tolist() == [3., 2., 3., 5.]


def test_pr_identical_sets():
    a, b = _two_modes(_gen(5))
    x = torch.cat([a, b])
    assert precision_recall(x, x) == (1.0, 1.0)


def test_pr_disjoint_far_apart():
    a, _ = _two_modes(_gen(6))
    assert precision_recall(a, a + 1000.) == (0.0, 0.0)


def test_pr_subset_drops_recall_not_precision():
    a, b = _two_modes(_gen(7))
    p, r = precision_recall(torch.cat([a, b]), a)     # the generator covers one of the two real modes
    assert p == 1.0 and 0.35 < r < 0.65


def test_pr_bad_inputs():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match='more than k=3'): precision_recall(x[:3], x)
    with pytest.raises(ValueError, match='more than k=3'): precision_recall(x, x[:2])
    with pytest.raises(ValueError, match='feature dims differ'): precision_recall(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match='positive int'): precision_recall(x, x, k=0)


def test_classifier_shapes_and_errors():
    cfg = ClassifierConfig(image_size=16, width=8, feat_dim=12)
    net = DigitClassifier(cfg).eval()
    x = torch.randn(3, 1, 16, 16)
    assert net(x).shape == (3, 10) and net.features(x).shape == (3, 12)
    assert torch.equal(net.features(x), net.features(x))           # deterministic in eval mode
    with pytest.raises(ValueError, match=r'expects images \(B, 1, H, W\)'): net(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match='image_size=8'): net(torch.randn(3, 1, 8, 8))


def test_class_accuracy_exact_and_errors():
    class Fixed(torch.nn.Module):                                   # predicts the class stored in pixel [0, 0]
        def __init__(self): super().__init__(); self.p = torch.nn.Parameter(torch.zeros(1))
        def forward(self, x): return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float() + 0 * self.p
    x = torch.zeros(4, 1, 2, 2); x[:, 0, 0, 0] = torch.tensor([1., 2., 3., 4.])
    assert class_accuracy(Fixed(), x, torch.tensor([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError, match=r'must be \(N,\) labels'): class_accuracy(Fixed(), x, torch.tensor([1, 2, 3]))


def test_random_shift_keeps_content():
    x = torch.full((2, 1, 6, 6), -1.); x[:, :, 2:4, 2:4] = 1.
    y = random_shift(x, 1, _gen(0))
    assert y.shape == x.shape and (y == 1).sum() == (x == 1).sum()    # a 1-pixel shift keeps the centred square inside
    assert torch.equal(random_shift(x, 0), x)


def test_classifier_profiles():
    assert digit_classifier_config('cpu').image_size == 16 and digit_classifier_config('gpu').image_size == 32
    with pytest.raises(KeyError, match='unknown classifier profile'): digit_classifier_config('fast')


def test_evaluator_on_tiny_data():
    g = _gen(8)
    cfg = ClassifierConfig(image_size=8, width=4, feat_dim=6)
    net = DigitClassifier(cfg).eval()
    x = torch.rand(40, 1, 8, 8, generator=g) * 2 - 1; y = torch.arange(40) % 10
    ev = DigitEvaluator(net, x, y, x[:20], y[:20])
    out = ev.evaluate(x[:20], y[:20])
    assert out['precision'] == 1.0 and out['recall'] == 1.0 and abs(out['fd']) < 1e-8 and out['n'] == 20
    ref = ev.reference(10, g)
    assert set(ref) == {'fd_train_test', 'fd_noise_test'}
    with pytest.raises(ValueError, match='n must be in'): ev.reference(100, g)


def test_train_classifier_runs_and_rejects_mismatch():
    from invdiff_nb.metrics import train_classifier
    g = _gen(9)
    y = torch.arange(32) % 2                                       # two classes: bright or dark images
    x = ((y.float() * 2 - 1) * 0.6).view(-1, 1, 1, 1) + 0.3 * torch.randn(32, 1, 8, 8, generator=g)
    cfg = ClassifierConfig(image_size=8, width=4, feat_dim=6, steps=40, batch_size=16, lr=1e-2, max_shift=0, dropout=0.0)
    model, res = train_classifier(x, y, cfg, seed=0, device='cpu')
    assert len(res.losses) == 40 and all(np.isfinite(res.losses)) and not model.training
    assert class_accuracy(model, x, y) > 0.9                      # it learned (a no-op optimiser stays near 0.5)
    with pytest.raises(ValueError, match='labels'): train_classifier(x, y[:5], cfg, device='cpu')


def test_evaluator_build_caches_the_classifier(tmp_path):
    cfg = ClassifierConfig(image_size=8, width=4, feat_dim=6, steps=2, batch_size=8)
    ev1 = DigitEvaluator.build(cfg, seed=0, device='cpu', root=tmp_path, verbose=False)
    ev2 = DigitEvaluator.build(cfg, seed=0, device='cpu', root=tmp_path, verbose=False)
    assert (ev1.loaded, ev2.loaded) == (False, True)
    assert torch.equal(ev1.test_feats, ev2.test_feats) and len(list(tmp_path.iterdir())) == 1
