"Fast tests of invdiff_nb.bias_data: procedural benchmarks, ratios, readers of the real folder formats, the CLI."
import csv, math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invdiff_nb.bias_data import (BENCHMARKS, BiasDataset, SIZES, counts_from_ratios, get_spec, make_benchmark,
                                  read_celeba, read_fairface, read_waterbirds, render, resolve_ratios, subsample_groups,
                                  write_benchmark_folder)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- procedural benchmarks

def test_waterbirds_exact_group_sizes():
    ds = make_benchmark('waterbirds', 'train', 16, seed=0)
    assert ds.group_counts().tolist() == [3498, 184, 56, 1057]
    assert ds.x.shape == (4795, 3, 16, 16) and ds.x.dtype == torch.float32
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    assert torch.equal(ds.group, ds.target * 2 + ds.bias)


@pytest.mark.parametrize('name', sorted(BENCHMARKS))
@pytest.mark.parametrize('size', SIZES)
def test_shapes_balance_and_determinism(name, size):
    spec = get_spec(name)
    a = make_benchmark(name, 'test', size, seed=3, n_per_group=3)
    b = make_benchmark(name, 'test', size, seed=3, n_per_group=3)
    assert a.x.shape == (3 * spec.num_groups, 3, size, size)
    assert a.group_counts().tolist() == [3] * spec.num_groups
    assert torch.equal(a.x, b.x) and torch.equal(a.group, b.group)
    assert not torch.equal(a.x, make_benchmark(name, 'test', size, seed=4, n_per_group=3).x)
    assert not torch.equal(a.x, make_benchmark(name, 'val', size, seed=3, n_per_group=3).x)


def test_default_ratios_of_face_benchmarks():
    assert make_benchmark('celeba', 'train', 16, n=60).group_counts().tolist() == [10, 20, 20, 10]
    assert make_benchmark('fairface', 'train', 16, n=140).group_counts().tolist() == [30, 20, 10, 10, 10, 10, 20, 30]


def test_same_scene_at_every_resolution():
    lo, hi = make_benchmark('waterbirds', 'val', 16, n_per_group=4), make_benchmark('waterbirds', 'val', 32, n_per_group=4)
    assert torch.equal(lo.target, hi.target) and torch.equal(lo.bias, hi.bias)
    assert (lo.x - torch.nn.functional.avg_pool2d(hi.x, 2)).abs().mean() < 0.1


def test_bias_is_visible_in_the_mean_colour():
    # the waterbirds background sets the mean colour: water images are bluer than land ones
    ds = make_benchmark('waterbirds', 'test', 16, n_per_group=20)
    blue = ds.x[:, 2].mean((1, 2)) - ds.x[:, 0].mean((1, 2))
    assert blue[ds.bias == 1].min() > blue[ds.bias == 0].max()


def test_correlation_parameter():
    spec = get_spec('waterbirds')
    p = resolve_ratios(spec, correlation=0.9).view(2, 2)
    assert torch.allclose(p[:, [0, 1]].diagonal() / p.sum(1), torch.tensor([0.9, 0.9], dtype=torch.float64))
    assert torch.allclose(resolve_ratios(spec, correlation=0.5).view(2, 2).std(1), torch.zeros(2, dtype=torch.float64))
    ds = make_benchmark('celeba', 'train', 16, n=100, correlation=1.0)
    c = ds.group_counts().view(2, 2)
    assert c[0, 0] == 0 and c[1, 1] == 0            # celeba's aligned values: glasses for dark hair, none for light


def test_counts_from_ratios_sum_and_rounding():
    for n in (0, 1, 7, 99, 1000):
        c = counts_from_ratios(torch.tensor([3., 2, 1, 1, 1, 1, 2, 3]), n)
        assert c.sum() == n and (c >= 0).all()
    assert counts_from_ratios(torch.tensor([1., 1, 1]), 4).tolist() == [2, 1, 1]


def test_bad_input():
    with pytest.raises(ValueError, match='4 groups'): make_benchmark('waterbirds', 'train', 16, group_ratios=[1, 2, 3])
    with pytest.raises(ValueError, match='8 groups'): make_benchmark('fairface', 'train', 16, group_ratios=[1, 1, 1, 1])
    with pytest.raises(ValueError, match=r'correlation must be in \[0, 1\]'): make_benchmark('celeba', 'train', 16, correlation=1.5)
    with pytest.raises(ValueError, match=r'correlation must be in \[0, 1\]'): make_benchmark('celeba', 'train', 16, correlation=-0.01)
    with pytest.raises(ValueError, match='not supported'): make_benchmark('waterbirds', 'train', 28)
    with pytest.raises(ValueError, match='unknown split'): make_benchmark('waterbirds', 'dev', 16)
    with pytest.raises(ValueError, match='group-balanced'): make_benchmark('waterbirds', 'test', 16, group_ratios=[1, 1, 1, 1])
    with pytest.raises(ValueError, match='either'): make_benchmark('waterbirds', 'train', 16, group_ratios=[1, 1, 1, 1], correlation=0.5)
    with pytest.raises(ValueError, match='non-negative'): resolve_ratios(get_spec('celeba'), [1, 0, -2, 1])
    with pytest.raises(KeyError, match='unknown benchmark'): make_benchmark('cifar', 'train', 16)
    with pytest.raises(ValueError, match='same length'): render('celeba', torch.zeros(3), torch.zeros(2), 16, torch.Generator())
    with pytest.raises(ValueError, match='labels out of range'):
        BiasDataset(torch.zeros(2, 3, 16, 16), torch.tensor([0, 2]), torch.tensor([0, 0]), get_spec('celeba'))


def test_subsample_groups():
    ds = make_benchmark('celeba', 'test', 16, n_per_group=10)
    sub = subsample_groups(ds, [1, 2, 2, 1])
    assert sub.group_counts().tolist() == [5, 10, 10, 5]
    assert subsample_groups(ds, [1, 1, 1, 1], n=8).group_counts().tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match='at most 30'): subsample_groups(ds, [1, 2, 2, 1], n=31)


# ---------------------------------------------------------------- readers of the real formats

def _img(path, value, size=(24, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8); arr[..., 0] = value; arr[..., 2] = 255 - value
    Image.fromarray(arr).save(path)


def _waterbirds_folder(root, columns=('img_filename', 'y', 'place', 'split')):
    rows = []
    for i, (y, place, split) in enumerate([(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1), (0, 0, 2), (1, 0, 2)]):
        rel = f'{y:03d}.Bird_{i}/img_{i}.jpg'
        _img(root / rel, 30 * i)
        rows.append(dict(img_id=i, img_filename=rel, y=y, split=split, place=place, place_filename='/x/y.jpg'))
    with open(root / 'metadata.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['img_id'] + list(columns) + ['place_filename'], extrasaction='ignore')
        w.writeheader(); w.writerows(rows)
    return rows


def test_read_waterbirds(tmp_path):
    _waterbirds_folder(tmp_path)
    tr = read_waterbirds(tmp_path, 'train', size=16)
    assert tr.x.shape == (4, 3, 16, 16) and tr.target.tolist() == [0, 0, 1, 1] and tr.bias.tolist() == [0, 1, 0, 1]
    assert tr.x[0, 0].mean() < tr.x[3, 0].mean()                         # red channel grows with the index
    assert len(read_waterbirds(tmp_path, 'val', 16)) == 1 and read_waterbirds(tmp_path, 'test', 16).target.tolist() == [0, 1]
    assert read_waterbirds(tmp_path, 'train', 16, group_ratios=[1, 0, 0, 1]).group_counts().tolist() == [1, 0, 0, 1]


def test_read_waterbirds_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'): read_waterbirds(tmp_path / 'nope', 'train', 16)
    with pytest.raises(FileNotFoundError, match='metadata.csv'): read_waterbirds(tmp_path, 'train', 16)
    _waterbirds_folder(tmp_path, columns=('img_filename', 'y', 'split'))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['place'\]"): read_waterbirds(tmp_path, 'train', 16)
    good = tmp_path / 'good'; rows = _waterbirds_folder(good)
    (good / rows[0]['img_filename']).unlink()
    with pytest.raises(FileNotFoundError, match='img_0.jpg'): read_waterbirds(good, 'train', 16)
    with pytest.raises(ValueError, match='not supported'): read_waterbirds(good, 'train', 20)
    with pytest.raises(ValueError, match='limit must be a positive int'): read_waterbirds(good, 'train', 16, limit=0)


def test_read_waterbirds_header_only_and_empty_split(tmp_path):
    (tmp_path / 'metadata.csv').write_text('img_id,img_filename,y,split,place,place_filename\n')
    with pytest.raises(ValueError, match='has a header but no rows'): read_waterbirds(tmp_path, 'train', 16)
    one = tmp_path / 'one'; rows = _waterbirds_folder(one)
    with open(one / 'metadata.csv', 'w', newline='') as f:               # keep only the training rows: val is empty
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows([r for r in rows if r['split'] == 0])
    assert len(read_waterbirds(one, 'train', 16)) == 4
    with pytest.raises(ValueError, match=r"no images in split 'val' \(split == 1\)"): read_waterbirds(one, 'val', 16)


def _celeba_folder(root, n=9, names=('Black_Hair', 'Blond_Hair', 'Eyeglasses', 'Male')):
    base = root / 'celeba'
    attr, part, ident, bbox, lms = [str(n), ' '.join(names) + ' '], [], [], ['%d' % n, 'image_id x_1 y_1 width height'], \
        [str(n), 'lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y']
    for i in range(n):
        f = f'{i + 1:06d}.jpg'
        _img(base / 'img_align_celeba' / f, 25 * i, size=(18, 22))
        attr.append(f + ' ' + ' '.join(' 1' if (i >> k) & 1 else '-1' for k in range(len(names))))
        part.append(f'{f} {i % 3}'); ident.append(f'{f} {i}')
        bbox.append(f'{f} 1 2 3 4'); lms.append(f + ' 1 2 3 4 5 6 7 8 9 10')
    for name, lines in [('list_attr_celeba.txt', attr), ('list_eval_partition.txt', part), ('identity_CelebA.txt', ident),
                        ('list_bbox_celeba.txt', bbox), ('list_landmarks_align_celeba.txt', lms)]:
        (base / name).write_text('\n'.join(lines) + '\n')


def test_read_celeba_own_reader(tmp_path):
    # torchvision checks the MD5 of the official annotation files, which a fixture cannot match: our reader takes over
    _celeba_folder(tmp_path)
    ds = read_celeba(tmp_path, 'train', 16, target_attr='Blond_Hair', bias_attr='Eyeglasses')
    idx = [0, 3, 6]
    assert ds.target.tolist() == [(i >> 1) & 1 for i in idx] and ds.bias.tolist() == [(i >> 2) & 1 for i in idx]
    assert ds.x.shape == (3, 3, 16, 16)
    assert len(read_celeba(tmp_path, 'val', 16)) == 3 and len(read_celeba(tmp_path / 'celeba', 'test', 16)) == 3
    with pytest.raises(RuntimeError, match='torchvision refused'): read_celeba(tmp_path, 'train', 16, use_torchvision=True)


def test_read_celeba_through_torchvision_matches(tmp_path, monkeypatch):
    from torchvision.datasets import CelebA
    _celeba_folder(tmp_path)
    ours = read_celeba(tmp_path, 'val', 16, use_torchvision=False)
    monkeypatch.setattr(CelebA, '_check_integrity', lambda self: True)   # pretend the MD5s matched
    tv = read_celeba(tmp_path, 'val', 16, use_torchvision=True)
    assert torch.equal(ours.target, tv.target) and torch.equal(ours.bias, tv.bias) and torch.equal(ours.x, tv.x)


def test_read_celeba_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='img_align_celeba'): read_celeba(tmp_path, 'train', 16)
    _celeba_folder(tmp_path)
    with pytest.raises(KeyError, match="no attribute 'Smiling'"): read_celeba(tmp_path, 'train', 16, bias_attr='Smiling')
    (tmp_path / 'celeba' / 'list_eval_partition.txt').unlink()
    with pytest.raises(FileNotFoundError, match='list_eval_partition.txt'): read_celeba(tmp_path, 'train', 16)
    with pytest.raises(ValueError, match='unknown split'): read_celeba(tmp_path, 'valid', 16)


def _fairface_folder(root, n_train=16, n_val=10):
    genders, races = ['Male', 'Female'], ['A', 'B', 'C', 'D', 'E']
    for split, n in (('train', n_train), ('val', n_val)):
        rows = []
        for i in range(n):
            rel = f'{split}/{i + 1}.jpg'; _img(root / rel, 10 * i)
            rows.append(dict(file=rel, age='20-29', gender=genders[i % 2], race=races[i % 5], service_test='True'))
        with open(root / f'fairface_label_{split}.csv', 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=['file', 'age', 'gender', 'race', 'service_test']); w.writeheader(); w.writerows(rows)


def test_read_fairface(tmp_path):
    _fairface_folder(tmp_path)
    tr = read_fairface(tmp_path, 'train', 16, target_values=('Male', 'Female'), bias_values=('A', 'B', ('C', 'D')))
    assert tr.spec.num_groups == 6 and tr.spec.bias_values == ('A', 'B', 'C+D')
    assert len(tr) == 13 and tr.bias.max() == 2                     # race 'E' is not listed: dropped
    allv = read_fairface(tmp_path, 'train', 16)
    assert allv.spec.target_values == ('Female', 'Male') and allv.spec.num_bias_values == 5 and len(allv) == 16
    val, test = read_fairface(tmp_path, 'val', 16, seed=1), read_fairface(tmp_path, 'test', 16, seed=1)
    assert len(val) + len(test) == 10 and len(val) == 5
    both = torch.cat([val.x, test.x]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 10                      # the halves are disjoint
    assert torch.equal(val.x, read_fairface(tmp_path, 'val', 16, seed=1).x)


def test_read_fairface_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='fairface_label_train.csv'): read_fairface(tmp_path, 'train', 16)
    _fairface_folder(tmp_path)
    with pytest.raises(ValueError, match="lack column 'skin'"): read_fairface(tmp_path, 'train', 16, bias_col='skin')
    with pytest.raises(ValueError, match='unknown split'): read_fairface(tmp_path, 'balanced', 16)


# ---------------------------------------------------------------- folder writer and CLI

def test_write_and_read_back(tmp_path):
    splits = {'train': make_benchmark('fairface', 'train', 16, n=14), 'balanced': make_benchmark('fairface', 'balanced', 16, n_per_group=1)}
    write_benchmark_folder(splits, tmp_path)
    back = read_waterbirds(tmp_path, 'train', 16)
    assert torch.equal(back.target, splits['train'].target) and torch.equal(back.bias, splits['train'].bias)
    assert (back.x - splits['train'].x).abs().max() <= 1 / 127.5 + 1e-6
    assert len(read_waterbirds(tmp_path, 'balanced', 16)) == 8


def _cli():
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_bias_benchmark', REPO / 'data_scripts' / 'make_bias_benchmark.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_cli(tmp_path, capsys):
    out = tmp_path / 'wb'
    assert _cli().main(['--benchmark', 'celeba', '--size', '16', '--n-train', '12', '--n-per-group', '1',
                        '--ratios', '1,2,2,1', '--splits', 'train,test', '--out', str(out)]) == 0
    assert 'wrote' in capsys.readouterr().out
    assert read_waterbirds(out, 'train', 16).group_counts().tolist() == [2, 4, 4, 2]
    assert len(read_waterbirds(out, 'test', 16)) == 4
    with pytest.raises(ValueError, match='4 groups'): _cli().main(['--benchmark', 'celeba', '--ratios', '1,2,3', '--out', str(tmp_path / 'bad')])
    conv = tmp_path / 'conv'
    _fairface_folder(tmp_path / 'ff')
    assert _cli().main(['--real', 'fairface', '--root', str(tmp_path / 'ff'), '--size', '16', '--out', str(conv)]) == 0
    assert len(read_waterbirds(conv, 'train', 16)) == 16 and read_waterbirds(conv, 'train', 16).spec.num_bias_values == 5
