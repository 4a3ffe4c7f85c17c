"""invdiff_nb.scenes: the procedural scenes with masks, the two-date pairs, the cached scene DDPM, the data script."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invdiff_nb.core import make_generator
from invdiff_nb.scenes import (SCENE_CLASSES, SceneDataset, ScenePairs, check_masks, check_scene_size, class_mask,
                               draw_scene_params, make_scene_pairs, make_scenes, mask_to_rgb, paint_scenes, scene_ddpm,
                               scene_ddpm_config, shape_sdf)

ROOT = Path(__file__).resolve().parents[1]


def test_make_scenes_is_seeded_and_well_formed():
    a, b, c = make_scenes(64, 16, seed=3), make_scenes(64, 16, seed=3), make_scenes(64, 16, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.x, c.x)
    assert a.x.shape == (64, 3, 16, 16) and a.mask.shape == (64, 16, 16) and a.mask.dtype == torch.long
    assert a.x.min() >= -1 and a.x.max() <= 1
    assert set(a.mask.unique().tolist()) <= set(range(len(SCENE_CLASSES)))
    # every scene holds one or two objects, so every scene has object pixels and background pixels
    assert (a.mask > 0).flatten(1).any(1).all() and (a.mask == 0).flatten(1).any(1).all()


@pytest.mark.parametrize('size', [16, 20, 24, 32])
def test_sizes_and_object_scale(size):
    d = make_scenes(200, size, seed=0)
    share = (d.mask > 0).float().mean().item()
    assert d.x.shape[-1] == size and 0.15 < share < 0.45          # objects keep their size relative to the image


def test_mask_is_the_class_of_the_visible_slot():
    P = draw_scene_params(300, make_generator(1))
    img, vis = paint_scenes(P, 16)
    lab = class_mask(P, vis)
    assert torch.equal(lab == 0, vis < 0)
    kinds = P['kind'].gather(1, vis.clamp(min=0).flatten(1)).view_as(vis)
    assert torch.equal(lab[vis >= 0], kinds[vis >= 0])
    # a slot that holds no object is never visible
    for m in range(2): assert not (vis == m)[~P['present'][:, m]].any()


def test_shape_areas_match_closed_forms():
    lin = torch.linspace(-1.5, 1.5, 901)
    vv, uu = torch.meshgrid(lin, lin, indexing='ij')
    cell = float(lin[1] - lin[0]) ** 2
    exact = [math.pi * 0.95 ** 2, 4 * 0.8 ** 2, 3 * math.sqrt(3) * 0.6 ** 2, 4 * 0.68 - 0.68 ** 2]
    for k, area in enumerate(exact, 1):
        got = float((shape_sdf(uu[None], vv[None], torch.tensor([k])) < 0).sum()) * cell
        assert abs(got - area) / area < 0.01, (SCENE_CLASSES[k], got, area)


def test_pairs_change_mask():
    still = make_scene_pairs(128, 16, seed=0, flip_prob=0.0)
    assert still.change.sum() == 0 and torch.equal(still.mask1, still.mask2)
    assert (still.x1 - still.x2).abs().mean() > 0.05               # the illumination moved every pixel
    p = make_scene_pairs(256, 16, seed=0, flip_prob=0.5)
    assert ((p.mask1 != p.mask2) <= (p.change == 1)).all()
    assert 0.3 < p.change.flatten(1).any(1).float().mean() < 1.0
    assert len(p.subset(torch.arange(5))) == 5


def test_bad_inputs():
    with pytest.raises(ValueError, match='multiple of 4'): check_scene_size(18)
    with pytest.raises(ValueError, match='multiple of 4'): make_scenes(2, size=8)
    with pytest.raises(ValueError, match='max_objects'): make_scenes(2, max_objects=0)
    with pytest.raises(ValueError, match='flip_prob'): make_scene_pairs(2, flip_prob=-0.1)
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match='to match the images'): check_masks(x, torch.zeros(2, 16, 15, dtype=torch.long), 5)
    with pytest.raises(ValueError, match='to match the images'): SceneDataset(x, torch.zeros(3, 16, 16, dtype=torch.long))
    with pytest.raises(TypeError, match='integer class labels'): check_masks(x, torch.zeros(2, 16, 16), 5)
    with pytest.raises(ValueError, match='lie in'): check_masks(x, torch.full((2, 16, 16), 7), 5)
    with pytest.raises(ValueError, match='num_classes must be an int >= 1'): check_masks(x, torch.zeros(2, 16, 16, dtype=torch.long), 0)
    with pytest.raises(ValueError, match='same shape|differ in shape'):
        ScenePairs(x, x[:1], *(torch.zeros(2, 16, 16, dtype=torch.long),) * 3)


def test_mask_to_rgb_range():
    rgb = mask_to_rgb(torch.arange(5).view(1, 1, 5))
    assert rgb.shape == (1, 3, 1, 5) and rgb.min() >= -1 and rgb.max() <= 1 and len({tuple(c) for c in rgb[0, :, 0].T.tolist()}) == 5


def test_scene_ddpm_trains_then_loads(tmp_path):
    cfg = scene_ddpm_config('smoke', n_train=16, steps=3, num_train_timesteps=10)
    m1, sched, info1 = scene_ddpm(cfg, seed=0, device='cpu', root=tmp_path, verbose=False)
    m2, _, info2 = scene_ddpm(cfg, seed=0, device='cpu', root=tmp_path, verbose=False)
    assert not info1['loaded'] and info2['loaded'] and len(info1['losses']) == 3
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not any(p.requires_grad for p in m1.parameters()) and not m1.training
    assert sched.config.num_train_timesteps == 10 and m1.config.num_train_timesteps == 10


def test_data_script_writes_pngs_that_read_back(tmp_path):
    out = tmp_path / 'scenes'
    r = subprocess.run([sys.executable, str(ROOT / 'data_scripts' / 'make_scenes.py'), '--out', str(out), '--n', '6', '--size', '16',
                        '--seed', '2'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = make_scenes(6, 16, seed=2)
    for i in range(6):
        mask = torch.from_numpy(np.array(Image.open(out / 'masks' / f'{i:05d}.png'))).long()
        img = torch.from_numpy(np.array(Image.open(out / 'images' / f'{i:05d}.png'))).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(mask, d.mask[i]) and (img - d.x[i]).abs().max() < 1 / 127
    r = subprocess.run([sys.executable, str(ROOT / 'data_scripts' / 'make_scenes.py'), '--out', str(tmp_path / 'pairs'), '--n', '3',
                        '--pairs'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / 'pairs').iterdir()) == ['change', 'classes.txt', 'date1', 'date2', 'mask1', 'mask2']
    r = subprocess.run([sys.executable, str(ROOT / 'data_scripts' / 'make_scenes.py'), '--out', str(tmp_path / 'bad'), '--size', '18'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and 'multiple of 4' in r.stderr
