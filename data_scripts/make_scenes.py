#!/usr/bin/env python
"""Write procedural scenes with per-pixel class masks (and two-date pairs with change masks) as PNG folders.

The renderer is taught and tested in nbs/70_scenes.ipynb (invdiff_nb.scenes):
    python data_scripts/make_scenes.py --out data/scenes_16 --n 2000 --size 16 --seed 0
    python data_scripts/make_scenes.py --out data/scene_pairs_32 --pairs --n 500 --size 32 --flip-prob 0.35
Single dates: images/00000.png (RGB) and masks/00000.png (8-bit class ids, 0 = background) plus classes.txt.
Pairs: date1/, date2/, mask1/, mask2/, change/ (0/1) with the same file names.
"""
import argparse, sys, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from invdiff_nb.scenes import SCENE_CLASSES, make_scene_pairs, make_scenes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--n', type=int, default=1000, help='number of scenes (or pairs)')
    p.add_argument('--size', type=int, default=16, help='image side: a multiple of 4 in [16, 64]')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-objects', type=int, default=2, choices=(1, 2))
    p.add_argument('--pairs', action='store_true', help='write two-date pairs with change masks instead of single scenes')
    p.add_argument('--flip-prob', type=float, default=0.35, help='per-slot probability of an insertion/removal (--pairs)')
    return p.parse_args(argv)


def _image(x: torch.Tensor) -> Image.Image:
    "A (3, H, W) tensor in [-1, 1] as an RGB image."
    return Image.fromarray(((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())


def _labels(m: torch.Tensor) -> Image.Image:
    "A (H, W) long tensor of small ids as an 8-bit grey image."
    return Image.fromarray(m.to(torch.uint8).numpy(), mode='L')


def main(argv=None) -> int:
    a = parse_args(argv)
    t0, root = time.time(), Path(a.out)
    if a.pairs:
        data = make_scene_pairs(a.n, a.size, seed=a.seed, flip_prob=a.flip_prob, max_objects=a.max_objects)
        folders = {'date1': (data.x1, _image), 'date2': (data.x2, _image), 'mask1': (data.mask1, _labels),
                   'mask2': (data.mask2, _labels), 'change': (data.change, _labels)}
    else:
        data = make_scenes(a.n, a.size, seed=a.seed, max_objects=a.max_objects)
        folders = {'images': (data.x, _image), 'masks': (data.mask, _labels)}
    for name, (tensors, to_png) in folders.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(tensors): to_png(t).save(root / name / f'{i:05d}.png')
    (root / 'classes.txt').write_text('\n'.join(f'{i} {c}' for i, c in enumerate(SCENE_CLASSES)) + '\n')
    print(f'wrote {a.n} {"pairs" if a.pairs else "scenes"} of {a.size} px to {root} ({", ".join(folders)}) in {time.time() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
