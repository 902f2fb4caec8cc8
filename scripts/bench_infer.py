"""Peak memory of tiled inference against scene size: it must follow the output array, not the network.

Usage: python scripts/bench_infer.py [--sizes 1024 2048 4096] [--whole-sizes 1024 2048]
                                     [--arch SRVGGNetCompact_basicsr] [--arch-args JSON] [--tile 256]

Every run is ``rssr-infer`` in a fresh process on a random 8-bit RGB LR scene,
and its peak RSS (VmHWM) is printed next to the output array's size:

* ``fixed``: a 64x64 scene, i.e. the interpreter, PyTorch, BasicSR, rasterio and
  the model: the cost every run pays whatever the scene;
* ``tiled png``: 256-pixel tiles, PNG output (the encoder needs the whole array);
* ``tiled tif``: the same tiles, TIFF output written strip by strip (needs rasterio);
* ``whole``: one tile as large as the scene, i.e. a plain whole-image forward:
  the baseline whose activations grow with the scene.

``x output`` = (peak - fixed) / output array size. The default model is a small
SRVGGNetCompact (32 channels, 4 convs, x4): FAT at its default size would take
hours for a 4096x4096 scene on a 2-core CPU; its tile activations, like any
model's, are bounded by ``--tile`` and ``--batch-size``, not by the scene.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from rssr_utils.guards import positive_int

SMALL_MODEL = '{"num_feat": 32, "num_conv": 4, "upscale": 4}'


def run(src, out, args, tile, ext=None):
    """Peak RSS (MiB) and seconds of one rssr-infer process; removes its output."""
    cmd = [
        sys.executable,
        '-c',  # rssr-infer (not `-m rssr_apps.inference.cli`: the package imports .cli, -m would run it twice)
        'from rssr_apps.cli import infer; infer()',
        src,
        out,
        '--arch',
        args.arch,
        '--arch-args',
        args.arch_args,
        '--tile',
        str(tile),
        '--quiet',
    ] + (['--ext', ext] if ext else [])
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - start
    if proc.returncode:
        sys.exit(f'{" ".join(cmd)} failed:\n{proc.stderr[-2000:]}')
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    return float(re.search(r'peak RSS (\d+) MiB', proc.stdout).group(1)), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--sizes', type=positive_int, nargs='+', default=[1024, 2048, 4096], help='LR sides, tiled runs'
    )
    parser.add_argument(
        '--whole-sizes',
        type=positive_int,
        nargs='*',
        default=[1024, 2048],
        help='LR sides of the whole-image baseline (4096 needs about 10 GiB with the default model)',
    )
    parser.add_argument('--arch', default='SRVGGNetCompact_basicsr')
    parser.add_argument('--arch-args', default=SMALL_MODEL)
    parser.add_argument('--tile', type=positive_int, default=256)
    args = parser.parse_args()
    scale = json.loads(args.arch_args)['upscale']
    try:
        import rasterio  # noqa: F401

        writers = [('tiled png', None), ('tiled tif', '.tif')]
    except ImportError:
        print('rasterio is not installed: no streamed TIFF runs (pip install ".[geo]")')
        writers = [('tiled png', None)]
    work = tempfile.mkdtemp(prefix='rssr_bench_infer_')
    out = os.path.join(work, 'out')
    rng = np.random.default_rng(0)

    def scene(size):
        path = os.path.join(work, f'scene{size}.png')
        if not os.path.exists(path):
            cv2.imwrite(path, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        return path

    fixed, _ = run(scene(64), out, args, args.tile)
    print(f'{args.arch} {args.arch_args}, tile {args.tile}, 8-bit RGB scenes; fixed cost (64x64 scene) {fixed:.0f} MiB')
    print(
        f'{"LR side":>8} {"run":>10} {"output MiB":>11} {"peak RSS MiB":>13} {"- fixed":>8} {"x output":>9} '
        f'{"seconds":>8}'
    )
    jobs = [(size, name, args.tile, ext) for size in args.sizes for name, ext in writers]
    jobs += [(size, 'whole', size, None) for size in args.whole_sizes]
    for size, name, tile, ext in sorted(jobs, key=lambda job: job[0]):
        peak, seconds = run(scene(size), out, args, tile, ext)
        output = 3 * (size * scale) ** 2 / 2**20
        print(
            f'{size:>8} {name:>10} {output:>11.0f} {peak:>13.0f} {peak - fixed:>8.0f} '
            f'{(peak - fixed) / output:>9.2f} {seconds:>8.1f}',
            flush=True,
        )
    for name in os.listdir(work):
        if name != 'out':
            os.remove(os.path.join(work, name))


if __name__ == '__main__':
    main()
