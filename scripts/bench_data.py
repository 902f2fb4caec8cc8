"""Samples per second of RSPairedDataset from PNG folders vs LMDB, measured in one run.

Usage: python scripts/bench_data.py [--num 200] [--size 256] [--scale 8] [--workdir DIR]

Writes --num random-texture HR tiles (size x size) and their MATLAB-bicubic LR as
PNG folders (cv2's default compression), packs both into LMDB with
scripts/create_lmdb.py's writer (PNG level 1, and the default BMP), and times full passes of
the validation-phase dataset (read, decode, pair, to tensor) over each, in this
process, single-threaded, best of --repeat passes.
"""

import argparse
import os
import tempfile
import time

import rssr_compat  # noqa: F401  (before basicsr: the torchvision alias)

import cv2
import numpy as np
from basicsr.data import build_dataset

import rssr_data  # noqa: F401
from rssr_data.prepare import save_lr
from rssr_utils.guards import positive_int
from rssr_utils.lmdb_util import write_lmdb


def rate(dataset, repeat):
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        best = min(best, time.perf_counter() - start)
    return len(dataset) / best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num', type=positive_int, default=200)
    parser.add_argument('--size', type=positive_int, default=256)
    parser.add_argument('--scale', type=positive_int, default=8)
    parser.add_argument('--repeat', type=positive_int, default=3)
    parser.add_argument('--workdir', default=None)
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix='rssr_bench_data_')
    rng = np.random.default_rng(0)
    folders = {k: os.path.join(work, k) for k in ('HR', 'LR')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    names = [f'tile{i:04d}.png' for i in range(args.num)]
    for name in names:
        hr = np.round(cv2.GaussianBlur(rng.random((args.size, args.size, 3)), (0, 0), 1.5) * 255).astype(np.uint8)
        cv2.imwrite(os.path.join(folders['HR'], name), hr)
        save_lr(hr, os.path.join(folders['LR'], name), args.scale)
    base = dict(type='RSPairedDataset', name='bench', phase='val', scale=args.scale)
    results = {
        'PNG folders': rate(
            build_dataset(
                dict(base, dataroot_gt=folders['HR'], dataroot_lq=folders['LR'], io_backend={'type': 'disk'})
            ),
            args.repeat,
        )
    }
    for fmt in ('png', 'bmp'):
        dbs = {k: os.path.join(work, f'{k}_{fmt}.lmdb') for k in folders}
        for k, db in dbs.items():
            write_lmdb(folders[k], names, db, overwrite=True, compress_level=1, fmt=fmt)
        data = build_dataset(dict(base, dataroot_gt=dbs['HR'], dataroot_lq=dbs['LR'], io_backend={'type': 'lmdb'}))
        results[f'LMDB, {fmt.upper()}'] = rate(data, args.repeat)
    baseline = results['PNG folders']
    print(f'{args.num} pairs, HR {args.size}x{args.size}, x{args.scale}, best of {args.repeat} passes, one thread')
    for name, value in results.items():
        print(f'{name:<18} {value:8.1f} samples/s  {value / baseline:5.2f}x')


if __name__ == '__main__':
    main()
