"""Samples per second of RSSceneDataset: windows read from a whole GeoTIFF vs the same windows as PNG tiles.

Usage: python scripts/bench_scene.py [--size 4096] [--gt-size 192] [--num 200] [--repeat 3] [--workdir DIR]

Writes a synthetic 4-band uint16 Sentinel-2-like scene (rssr_data.synthetic; tiled
256 x 256, deflate, as the generator writes it; no nodata, so no window is drawn
twice), draws --num training windows with RSSceneDataset (bicubic LR, flips and
rotations), cuts those same windows to 16-bit 4-channel PNG tiles (OpenCV's
default compression), and times, in this process, single-threaded, best of
--repeat passes (the files are in the page cache after the first):

* scene: ``RSSceneDataset.__getitem__`` (windowed rasterio read, model values,
  nodata fill, LR, augmentation);
* PNG tiles: the same dataset with only its read replaced by ``cv2.imread`` of
  the pre-cut tile (checked to give the same samples);
* the reads alone (rasterio window vs PNG decode).

Prints samples/s of each and the ratio scene / PNG tiles.
"""

import argparse
import os
import platform
import tempfile
import time

import rssr_compat  # noqa: F401  (before basicsr: the torchvision alias)

import cv2
import numpy as np
import torch

from rssr_data.rs_scene_dataset import RSSceneDataset
from rssr_data.synthetic import write_scene


class PngTileDataset(RSSceneDataset):
    """The baseline: RSSceneDataset whose windows come from pre-cut PNG tiles (only ``_read`` differs).

    Args:
        opt (dict): RSSceneDataset options.
        tiles (dict): (scene path, top, left) -> PNG file of that window, (H, W, C) stored values.
    """

    def __init__(self, opt, tiles):
        super().__init__(opt)
        self.tiles = tiles

    def _read(self, scene, top, left, size):
        return cv2.imread(self.tiles[(scene.path, top, left)], cv2.IMREAD_UNCHANGED)


def best_rate(fn, count, repeat):
    """Calls per second of ``fn(i)`` for i in range(count): best of ``repeat`` passes."""
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return count / best


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--size',
        type=int,
        default=4096,
        help='scene side (pixels; 4096: 128 MiB decoded, twice the GDAL block cache the dataset sets)',
    )
    parser.add_argument('--gt-size', type=int, default=192, help='window side (HR pixels)')
    parser.add_argument('--num', type=int, default=200, help='windows per pass')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--workdir', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    work = args.workdir or tempfile.mkdtemp(prefix='rssr_bench_scene_')
    scene = os.path.join(work, 'scene.tif')
    if not os.path.isfile(scene):
        write_scene(scene, (args.size, args.size), seed=0, nodata_fraction=0)
    opt = dict(
        type='RSSceneDataset',
        name='bench',
        phase='train',
        scale=4,
        dataroot_gt=scene,
        gt_size=args.gt_size,
        radiometry='sentinel2_l2a',
        use_hflip=True,
        use_rot=True,
        num_windows=args.num,
    )
    scenes = RSSceneDataset(opt)
    windows = [tuple(int(v) for v in scenes[i]['window']) for i in range(args.num)]
    tiles = {}
    for top, left in windows:
        path = os.path.join(work, f'tile_{top}_{left}.png')
        cv2.imwrite(path, scenes._read(scenes.scenes[0], top, left, args.gt_size))  # 4 channels, uint16
        tiles[(scene, top, left)] = path
    pngs = PngTileDataset(opt, tiles)
    for i in range(0, args.num, max(1, args.num // 10)):  # both give the same samples
        assert torch.equal(scenes[i]['gt'], pngs[i]['gt']) and torch.equal(scenes[i]['lq'], pngs[i]['lq'])

    rates = {
        'scene windows (RSSceneDataset)': best_rate(scenes.__getitem__, args.num, args.repeat),
        'pre-cut 16-bit PNG tiles': best_rate(pngs.__getitem__, args.num, args.repeat),
    }
    reads = {
        'scene window read (rasterio)': best_rate(
            lambda i: scenes._read(scenes.scenes[0], *windows[i], args.gt_size), args.num, args.repeat
        ),
        'PNG tile read (cv2.imread)': best_rate(
            lambda i: pngs._read(pngs.scenes[0], *windows[i], args.gt_size), args.num, args.repeat
        ),
    }
    tile_bytes = np.mean([os.path.getsize(p) for p in tiles.values()])
    print(
        f'CPU {cpu_name()}, {os.cpu_count()} cores, 1 thread; scene {args.size}x{args.size}x4 uint16 '
        f'({os.path.getsize(scene) / 2**20:.1f} MiB), {args.num} windows of {args.gt_size} px '
        f'(PNG tiles {tile_bytes / 1024:.0f} KiB each), best of {args.repeat}'
    )
    for title, table in (('samples/s (read, model values, fill, LR, augment)', rates), ('reads/s', reads)):
        base = list(table.values())[1]
        for name, value in table.items():
            print(f'{title:<52} {name:<32} {value:8.1f}   {value / base:.2f}x')


if __name__ == '__main__':
    main()
