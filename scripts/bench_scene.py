"""Samples per second of RSSceneDataset (windows read from a whole GeoTIFF scene) vs the same windows pre-cut
to 16-bit PNG tiles (RSPairedDataset), measured in one run.

Usage: python scripts/bench_scene.py [--num 200] [--gt-size 256] [--scene 4096] [--scale 4] [--workdir DIR]

Writes a synthetic 4-band uint16 Sentinel-2-like scene (--scene pixels square, tiled deflate GeoTIFF, no
nodata), lets RSSceneDataset draw --num training windows, writes each window as a 4-band 16-bit PNG, and times
full passes of both datasets in this process, single-threaded, best of --repeat passes. Both make the
bicubic LR in reflectance and return tensors; neither flips. Prints both rates and their ratio.
"""

import argparse
import os
import tempfile

import rssr_compat  # noqa: F401  (before basicsr: the torchvision alias)

import cv2
from basicsr.data import build_dataset
from bench_data import rate  # scripts/ is on the path of a script run from it

import rssr_data  # noqa: F401
from rssr_data.synthetic import write_scene
from rssr_utils.radiometry import PROFILES


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num', type=int, default=200, help='windows (and tiles)')
    parser.add_argument('--gt-size', type=int, default=256)
    parser.add_argument('--scene', type=int, default=4096, help='side of the scene')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--workdir', help='keep the files here (default: a temporary folder)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or tmp
        scene = os.path.join(work, 'scene.tif')
        if not os.path.exists(scene):
            write_scene(scene, (args.scene, args.scene), seed=0, nodata_fraction=0)
        common = dict(name='bench', scale=args.scale, radiometry='sentinel2_l2a')
        scenes = build_dataset(
            dict(
                common,
                type='RSSceneDataset',
                phase='train',
                dataroot_gt=scene,
                gt_size=args.gt_size,
                num_windows=args.num,
            )
        )
        tiles = os.path.join(work, 'tiles')
        os.makedirs(tiles, exist_ok=True)
        s2 = PROFILES['sentinel2_l2a']
        for i in range(len(scenes)):  # the very windows the scene dataset reads, as the PNGs a tiler would cut
            top, left = scenes[i]['window'].tolist()
            stored = scenes._read(scenes.scenes[0], top, left, args.gt_size)
            assert (s2.to_model(stored) == scenes[i]['gt'].numpy().transpose(1, 2, 0)).all()
            cv2.imwrite(os.path.join(tiles, f'{i:05d}.png'), stored[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
        pngs = build_dataset(
            dict(common, type='RSPairedDataset', phase='val', dataroot_gt=tiles, lq_from_gt=True, bands=[1, 2, 3, 4])
        )
        scene_rate, png_rate = rate(scenes, args.repeat), rate(pngs, args.repeat)
    print(
        f'{args.num} windows of {args.gt_size}^2 x 4 bands (uint16), x{args.scale} bicubic LR, best of {args.repeat}:'
    )
    print(f'  RSSceneDataset (windowed reads of a {args.scene}^2 GeoTIFF): {scene_rate:7.1f} samples/s')
    print(f'  RSPairedDataset (pre-cut 16-bit PNG tiles):            {png_rate:7.1f} samples/s')
    print(f'  ratio scene / tiles: {scene_rate / png_rate:.2f}')


if __name__ == '__main__':
    main()
