"""Peak memory of tiled inference against scene size: it must follow the output array, not the network.

Usage: python scripts/bench_infer.py [--sizes 1024 2048 4096] [--arch Bicubic] [--arch-args '{"upscale": 4}']

Each LR scene (random 8-bit RGB PNG) is super-resolved by ``rssr-infer`` in a fresh
process with 256-pixel tiles; the script prints that process's peak RSS next to the
size of the input and output arrays (uint8).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import cv2
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[1024, 2048, 4096])
    parser.add_argument('--arch', default='Bicubic')
    parser.add_argument('--arch-args', default='{"upscale": 4}')
    parser.add_argument('--tile', type=int, default=256)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='rssr_bench_infer_')
    scale = int(re.search(r'"upscale":\s*(\d+)', args.arch_args).group(1))
    print(f'{args.arch} {args.arch_args}, tile {args.tile}, 8-bit RGB PNG scenes')
    print(f'{"LR side":>8} {"input MiB":>10} {"output MiB":>11} {"peak RSS MiB":>13}')
    for size in args.sizes:
        src = os.path.join(work, f'scene{size}.png')
        img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(src, img)
        del img
        proc = subprocess.run([sys.executable, '-m', 'rssr_model.tiled_inference', src, os.path.join(work, 'out'),
                               '--arch', args.arch, '--arch-args', args.arch_args, '--tile', str(args.tile)],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-2000:])
        peak = float(re.search(r'peak RSS (\d+) MiB', proc.stdout).group(1))
        os.remove(os.path.join(work, 'out', f'scene{size}.png'))
        mib = 3 / 2**20
        print(f'{size:>8} {size * size * mib:>10.0f} {size * size * scale**2 * mib:>11.0f} {peak:>13.0f}')


if __name__ == '__main__':
    main()
