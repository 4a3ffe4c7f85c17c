#!/usr/bin/env python
"""Write a biased benchmark as a Waterbirds-style folder (PNG images + metadata.csv with img_filename, y, place, split).

Procedural (nbs/40_bias_data.ipynb):
    python data_scripts/make_bias_benchmark.py --benchmark waterbirds --size 32 --seed 0 --out data/waterbirds_32
    python data_scripts/make_bias_benchmark.py --benchmark celeba --size 16 --ratios 1,8,8,1 --out data/celeba_1881
    python data_scripts/make_bias_benchmark.py --benchmark fairface --size 16 --correlation 0.6 --out data/ff_c06
A real dataset folder, resized to one of the supported sizes (the same records and split names):
    python data_scripts/make_bias_benchmark.py --real celeba --root ~/data --size 64 --out data/celeba_64 \
        --target-attr Blond_Hair --bias-attr Eyeglasses
y = target, place = bias, split = 0 train / 1 val / 2 test / 3 balanced.
"""
import argparse, sys, time
from pathlib import Path

from invdiff_nb.bias_data import (BENCHMARKS, SIZES, SPLITS, make_benchmark, read_celeba, read_fairface,
                                  read_waterbirds, write_benchmark_folder)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--benchmark', choices=sorted(BENCHMARKS), default='waterbirds', help='procedural benchmark')
    p.add_argument('--real', choices=['waterbirds', 'celeba', 'fairface'], help='convert a real dataset folder instead')
    p.add_argument('--root', help='folder of the real dataset (with --real)')
    p.add_argument('--size', type=int, default=16, choices=SIZES)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--splits', default=None, help=f'comma-separated subset of {SPLITS} (default: all available)')
    p.add_argument('--n-train', type=int, default=None, help='size of the biased training split (procedural)')
    p.add_argument('--n-per-group', type=int, default=None, help='images per group in the balanced splits (procedural)')
    p.add_argument('--ratios', default=None, help='training group ratios, comma-separated, one per group')
    p.add_argument('--correlation', type=float, default=None, help='training correlation strength in [0, 1]')
    p.add_argument('--target-attr', default='Blond_Hair', help='CelebA attribute used as target')
    p.add_argument('--bias-attr', default='Male', help='CelebA attribute used as bias')
    p.add_argument('--limit', type=int, default=None, help='read at most this many images per split (real data)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    ratios = [float(r) for r in a.ratios.split(',')] if a.ratios else None
    t0 = time.time()
    if a.real:
        if not a.root: raise SystemExit('--real needs --root, the folder of the dataset')
        avail = {'waterbirds': ('train', 'val', 'test'), 'celeba': ('train', 'val', 'test'), 'fairface': ('train', 'val', 'test')}[a.real]
        splits = a.splits.split(',') if a.splits else list(avail)
        read = {'waterbirds': read_waterbirds, 'fairface': read_fairface,
                'celeba': lambda root, split, **kw: read_celeba(root, split, target_attr=a.target_attr, bias_attr=a.bias_attr, **kw)}[a.real]
        data = {s: read(a.root, s, size=a.size, limit=a.limit, seed=a.seed,
                        group_ratios=ratios if s == 'train' else None) for s in splits}
    else:
        splits = a.splits.split(',') if a.splits else list(SPLITS)
        data = {}
        for s in splits:
            kw = dict(n=a.n_train, group_ratios=ratios, correlation=a.correlation) if s == 'train' else dict(n_per_group=a.n_per_group)
            data[s] = make_benchmark(a.benchmark, s, a.size, seed=a.seed, **kw)
    root = write_benchmark_folder(data, a.out)
    for s, ds in data.items(): print(f'{s:9s} {len(ds):6d} images, group counts {ds.group_counts().tolist()}')
    print(f'wrote {root} in {time.time() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
