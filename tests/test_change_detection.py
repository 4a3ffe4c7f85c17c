"""invdiff_nb.change_detection: difference features, change scores, the pixel-difference baseline, random initialisation."""
import pytest
import torch
from torch import nn

from invdiff_nb.ddpm import GaussianScheduler
from invdiff_nb.models import UNet, unet_config
from invdiff_nb.scenes import make_scene_pairs
from invdiff_nb.change_detection import best_threshold, change_scores, difference_features, pixel_difference, random_init_


@pytest.fixture(scope='module')
def unet():
    torch.manual_seed(0)
    return UNet(unet_config('smoke', in_channels=3, num_train_timesteps=100)).eval()


def test_difference_features(unet):
    sched = GaussianScheduler(num_train_timesteps=100)
    p = make_scene_pairs(3, 16, seed=0)
    same = difference_features(unet, sched, p.x1, p.x1, ['up.1', 'up.4'], [5, 40], seed=1)
    diff = difference_features(unet, sched, p.x1, p.x2, ['up.1', 'up.4'], [5, 40], seed=1)
    assert same.shape == diff.shape == (3, 2 * (32 + 16), 16, 16)
    assert same.abs().max() == 0 and diff.min() >= 0 and diff.abs().max() > 0
    with pytest.raises(ValueError, match='same shape'): difference_features(unet, sched, p.x1, p.x2[:2], ['up.1'], [5])
    with pytest.raises(ValueError, match=r'ints in \[0, 99\]'): difference_features(unet, sched, p.x1, p.x2, ['up.1'], [100])
    with pytest.raises(KeyError, match='has no layer'): difference_features(unet, sched, p.x1, p.x2, ['up.42'], [5])


def test_change_scores_by_hand():
    s = change_scores(torch.tensor([[1, 1, 0, 0, 0]]), torch.tensor([[1, 0, 1, 0, 0]]))
    assert s == dict(f1=0.5, iou=1 / 3, precision=0.5, recall=0.5, oa=0.6)
    assert change_scores(torch.zeros(2, 3), torch.ones(2, 3))['f1'] == 0.0
    assert change_scores(torch.zeros(2, 3), torch.zeros(2, 3))['oa'] == 1.0
    with pytest.raises(ValueError, match='differ in shape'): change_scores(torch.zeros(2, 3), torch.zeros(3, 2))


def test_best_threshold_and_pixel_difference():
    score = torch.tensor([[0.1, 0.9, 0.2, 0.8, 0.85]])
    thr, f1 = best_threshold(score, torch.tensor([[0, 1, 0, 1, 1]]))
    assert f1 == 1.0 and 0.2 <= thr < 0.8
    x1, x2 = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    x2[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])
    assert torch.equal(pixel_difference(x1, x2), torch.tensor([[[5.0, 0.0], [0.0, 0.0]]]))
    with pytest.raises(ValueError, match='same shape'): pixel_difference(x1, x2[:, :2])


def test_random_init_is_seeded_and_has_no_zero_layers():
    cfg = unet_config('smoke', in_channels=3)
    a, b, c = random_init_(UNet(cfg), seed=1), random_init_(UNet(cfg), seed=1), random_init_(UNet(cfg), seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.out[-1].weight, c.out[-1].weight)
    assert all(m.weight.abs().max() > 0 for m in a.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert UNet(cfg).out[-1].weight.abs().max() == 0                     # what the default init would have left at zero
