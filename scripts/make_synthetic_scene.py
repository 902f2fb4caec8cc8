"""Make synthetic Sentinel-2-like 4-band uint16 GeoTIFF scenes (B2, B3, B4, B8; L2A DN; nodata 0; UTM, 10 m).

Examples:
  python scripts/make_synthetic_scene.py --root datasets/s2_synthetic      # what options/*_s2_rgbn.yml read
  python scripts/make_synthetic_scene.py --out scene.tif --size 2048 2048 --seed 3
  python scripts/make_synthetic_scene.py --out scene.tif --lr-out scene_x4.tif --scale 4

See rssr_data/synthetic.py for how the scenes are made. Existing files are kept unless --overwrite.
"""

import argparse
import sys

from rssr_data.synthetic import write_dataset, write_lr_scene, write_scene


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--root', help='write <root>/train/scene_<i>.tif and <root>/val/scene_val.tif')
    target.add_argument('--out', help='write one scene to this .tif')
    parser.add_argument('--size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'), help='with --out')
    parser.add_argument('--train-scenes', type=int, default=2, help='with --root: training scenes (1024 x 1024)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--nodata-fraction', type=float, default=0.1, help='share of nodata on the swath edge')
    parser.add_argument('--lr-out', help='with --out: also write the LR scene (block means, pixel size x scale)')
    parser.add_argument('--scale', type=int, default=4, help='with --lr-out')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files')
    args = parser.parse_args(argv)
    if args.lr_out and not args.out:
        parser.error('--lr-out needs --out')
    if min(args.size) < 1 or not 0 <= args.nodata_fraction < 0.5:
        parser.error('--size must be positive and --nodata-fraction in [0, 0.5)')
    try:
        if args.root:
            written = write_dataset(args.root, args.train_scenes, seed=args.seed, overwrite=args.overwrite)
        else:
            written = [write_scene(args.out, tuple(args.size), args.seed, args.nodata_fraction, args.overwrite)]
            if args.lr_out:
                written.append(write_lr_scene(args.out, args.lr_out, args.scale, overwrite=args.overwrite))
    except (OSError, ValueError) as error:
        sys.exit(f'make_synthetic_scene: {error}')
    print('\n'.join(written))


if __name__ == '__main__':
    main()
