#!/usr/bin/env python
"""Write the procedural E2E-like restaurant corpus as train/valid/test CSV files in the real E2E format (`mr,ref`).

Usage: python data_scripts/make_e2e_like.py OUT_DIR [--n-train 4000] [--n-valid 500] [--n-test 500] [--seed 0]
The logic lives in `invdiff_nb.text` (nbs/30_text.ipynb); this is a thin command-line wrapper.
"""
import argparse, sys

from invdiff_nb.text import write_e2e_like


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out_dir', help='folder to write train.csv, valid.csv and test.csv into (created if missing)')
    p.add_argument('--n-train', type=int, default=4000)
    p.add_argument('--n-valid', type=int, default=500)
    p.add_argument('--n-test', type=int, default=500)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    if min(a.n_train, a.n_valid, a.n_test) < 0: p.error('sizes must be >= 0')
    paths = write_e2e_like(a.out_dir, a.n_train, a.n_valid, a.n_test, a.seed)
    for split, path in paths.items(): print(f'{split}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
