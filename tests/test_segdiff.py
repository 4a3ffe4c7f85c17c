"""invdiff_nb.segdiff and invdiff_nb.semantic_synthesis: conditioning by concatenation, masks as one-hot images,
implicit ensembles, AUROC, mask sampling, the mask-conditioned DDPM with classifier-free guidance."""
import pytest
import torch
from torch import nn
from sklearn.metrics import roc_auc_score

from invdiff_nb.ddpm import GaussianScheduler, diffusion_loss, drop_condition
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.sampling import CFGModel, sample
from invdiff_nb.features import Segmenter
from invdiff_nb.segdiff import (ConcatCondition, auroc, ensemble_uncertainty, ensemble_votes, masks_to_onehot,
                                onehot_to_masks, sample_masks)
from invdiff_nb.semantic_synthesis import generate_from_masks, mask_condition, segmenter_features

K = 5


def _model(in_x, out, cond_channels, null_value=None, seed=0):
    torch.manual_seed(seed)
    unet = UNet(unet_config('smoke', in_channels=in_x + cond_channels, out_channels=out, num_train_timesteps=20))
    for p in unet.out.parameters(): nn.init.normal_(p, std=0.1)
    return ConcatCondition(unet, cond_channels, null_value).eval()


def test_concat_condition_is_the_unet_on_stacked_channels():
    m = _model(K, K, 3)
    x, img = torch.randn(2, K, 16, 16), torch.randn(2, 3, 16, 16)
    with torch.no_grad(): assert torch.equal(m(x, 4, img), m.model(torch.cat([x, img], 1), 4))
    assert m.null_class is None
    with pytest.raises(ValueError, match='needs cond'): m(x, 4)
    with pytest.raises(ValueError, match='to match x_t'): m(x, 4, img[:, :, :8])           # mask/image size mismatch
    with pytest.raises(ValueError, match='to match x_t'): m(x, 4, img[:1])
    with pytest.raises(ValueError, match='to match x_t'): m(x, 4, torch.randn(2, 4, 16, 16))
    with pytest.raises(ValueError, match='cond_channels must be an int >= 1'): ConcatCondition(nn.Identity(), 0)


def test_null_condition_and_guidance():
    m = _model(3, 3, K, null_value=0.0)
    x, t = torch.randn(3, 3, 16, 16), torch.full((3,), 7)
    cond = mask_condition(torch.randint(0, K, (3, 16, 16)), K)
    assert m.null_class.shape == (1, K, 1, 1) and m.null_class.abs().max() == 0
    with torch.no_grad():
        assert torch.equal(m(x, t), m(x, t, torch.zeros(3, K, 16, 16)))                      # None = the null mask
        e_u, e_c = m(x, t), m(x, t, cond)
        assert torch.allclose(CFGModel(m, 3.0)(x, t, cond), e_u + 3.0 * (e_c - e_u), atol=1e-5)
    dropped = drop_condition(cond.repeat(100, 1, 1, 1), 0.3, m.null_class, torch.Generator().manual_seed(0))
    null = dropped.flatten(1).abs().sum(1) == 0
    assert 0.2 < null.float().mean() < 0.4 and torch.equal(dropped[~null], cond.repeat(100, 1, 1, 1)[~null])
    loss = diffusion_loss(m, GaussianScheduler(num_train_timesteps=20), torch.randn(4, 3, 16, 16), cond=cond[:1].repeat(4, 1, 1, 1),
                          generator=torch.Generator().manual_seed(0), cond_drop_prob=0.5, null_cond=m.null_class)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_onehot_round_trip_and_errors():
    mask = torch.randint(0, K, (4, 8, 8))
    x = masks_to_onehot(mask, K)
    assert x.shape == (4, K, 8, 8) and set(x.unique().tolist()) == {-1.0, 1.0} and torch.equal(onehot_to_masks(x), mask)
    assert set(mask_condition(mask, K).unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match='num_classes must be an int >= 1'): masks_to_onehot(mask, 0)
    with pytest.raises(ValueError, match='lie in'): masks_to_onehot(mask, 3)
    with pytest.raises(ValueError, match='integer labels'): masks_to_onehot(mask.float(), K)


def test_votes_and_uncertainty_are_the_sample_variance():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, K, (7, 3, 4, 4), generator=g)
    v = ensemble_votes(s, K)
    assert torch.allclose(v.sum(1), torch.ones(3, 4, 4))
    onehot = torch.nn.functional.one_hot(s, K).float()
    assert torch.allclose(ensemble_uncertainty(v), onehot.var(0, unbiased=False).sum(-1), atol=1e-6)
    assert ensemble_uncertainty(ensemble_votes(s[:1].expand(5, -1, -1, -1), K)).abs().max() == 0


def test_auroc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        sc, lb = torch.randint(0, 4, (300,), generator=g).float(), torch.rand(300, generator=g) < 0.2
        assert abs(auroc(sc, lb) - roc_auc_score(lb.numpy(), sc.numpy())) < 1e-12
    assert auroc(torch.tensor([3., 2., 1.]), torch.tensor([1, 0, 0])) == 1.0
    assert auroc(torch.tensor([1., 1.]), torch.tensor([1, 0])) == 0.5
    with pytest.raises(ValueError, match='both classes'): auroc(torch.rand(4), torch.ones(4))
    with pytest.raises(ValueError, match='same number'): auroc(torch.rand(4), torch.ones(3))


def test_sample_masks_shapes_and_seed():
    m = _model(K, K, 3)
    sched = GaussianScheduler(num_train_timesteps=20, clip_sample=True)
    img = torch.randn(3, 3, 16, 16)
    a = sample_masks(m, sched, img, K, n_samples=2, num_inference_steps=3, seed=0, batch_size=4)
    b = sample_masks(m, sched, img, K, n_samples=2, num_inference_steps=3, seed=0, batch_size=4)
    assert a.shape == (2, 3, 16, 16) and a.dtype == torch.long and torch.equal(a, b) and a.max() < K
    with pytest.raises(ValueError, match='n_samples'): sample_masks(m, sched, img, K, n_samples=0)


def test_generate_from_masks_and_segmenter_features():
    m = _model(3, 3, K, null_value=0.0)
    sched = GaussianScheduler(num_train_timesteps=20, clip_sample=True)
    masks = torch.randint(0, K, (3, 16, 16))
    x = generate_from_masks(m, sched, masks, K, w=2.0, num_inference_steps=3, seed=0, batch_size=2)
    assert x.shape == (3, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, generate_from_masks(m, sched, masks, K, w=2.0, num_inference_steps=3, seed=0, batch_size=2))
    seg = Segmenter(UNet(unet_config('smoke', in_channels=3, out_channels=K))).eval()
    f = segmenter_features(seg, x, batch_size=2)
    assert f.shape == (3, 32)
    with pytest.raises(KeyError, match='has no layer'): segmenter_features(seg, x, layer='unet.mid.9')
    with pytest.raises(ValueError, match='lie in'): generate_from_masks(m, sched, masks + K, K, w=1.0, num_inference_steps=2)
