"""Split an extracted remote-sensing data set and make its MATLAB-bicubic LR images.

Examples:
  python scripts/prepare_dataset.py --dataset nwpu --src downloads/NWPU-RESISC45 --out datasets/NWPU-RESISC45 --scales 8
  python scripts/prepare_dataset.py --dataset ucmerced --src downloads/UCMerced_LandUse/Images \\
      --out datasets/UCMerced --scales 8 16

--src holds one sub-folder per class. Splits are per class and seeded: NWPU-RESISC45
follows TSFNet's protocol (45 train / 5 val / 50 test per class, the other 600 unused);
the others use --fractions (default 0.8 / 0.1 / 0.1). To reproduce the papers'
UC Merced / AID numbers, put the split lists of the HSENet archive into <out>/splits/
first ({train,val,test}.txt, relative paths): existing split files are always reused.
Re-running after an interruption only does what is missing. Replaces the official
MATLAB generate_mod_LR_bic.m (LR = imresize(modcrop(HR, s), 1/s), MATLAB kernel).

Every HR is validated before it is copied (empty, corrupt, truncated, above
--max-pixels, not RGB/grey, smaller than a scale): a bad HR is neither copied
nor downscaled, the others are, and the bad ones are listed at the end (exit
status 1). Split-file entries must be relative paths inside --src ('..' and
absolute paths are refused), so nothing is ever written outside --out.

--lr sensor makes sensor-like LR instead of MATLAB bicubic (rssr_data.sensor_degradations:
per-band Gaussian PSF with the declared MTF at the LR Nyquist, sampling at the LR pixel
centres, optional Gaussian noise in model units seeded by --seed and each HR file's bytes):
  python scripts/prepare_dataset.py --dataset other --src tiles --out datasets/tiles_s2 --scales 4 \\
      --lr sensor --radiometry sentinel2_l2a --mtf 0.24 0.28 0.26 --noise 0.002
--radiometry maps the files' values to model values (default: uint8 / uint16 by file type);
--mtf gives the MTF at Nyquist per band in file order (red, green, blue) or once for all,
default the radiometry's (see rssr_utils/radiometry.py). The LR kind is recorded in
<out>/lr_settings.json; a later run with other settings on the same --out is refused.

--denoise nlm|bm3d writes denoised HR copies instead of plain ones (JPEG inputs
become .png) and makes the LR from them, with <out>/provenance.json (method,
strength, each image's PSNR against its original); see scripts/denoise_hr.py.
"""

import argparse
import sys
import time
from functools import partial
from multiprocessing import Pool
from os import path as osp

import rssr_compat  # noqa: F401

from tqdm import tqdm

from rssr_apps.denoise import add_arguments, denoise_splits, settings_from
from rssr_data.prepare import plan, run_job
from rssr_data.sensor_degradations import prepare_lr_maker
from rssr_utils.image_io import ImageError, add_max_pixels_argument


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', required=True, choices=['ucmerced', 'aid', 'nwpu', 'rssr25', 'other'])
    parser.add_argument('--src', required=True, help='extracted download: one sub-folder per class')
    parser.add_argument('--out', required=True, help='output root (splits/, train/, val/, test/)')
    parser.add_argument('--scales', type=int, nargs='*', default=[8], help='LR scales, e.g. 2 3 4 8 16')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fractions', type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=('TRAIN', 'VAL', 'TEST'))
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--lr', choices=['bicubic', 'sensor'], default='bicubic', help='how LR images are made')
    parser.add_argument('--radiometry', help='--lr sensor: profile name (e.g. sentinel2_l2a) of the files')
    parser.add_argument('--mtf', type=float, nargs='+', help='--lr sensor: MTF at Nyquist, once or per band')
    parser.add_argument('--noise', type=float, nargs='+', help='--lr sensor: noise std per band, model units')
    add_max_pixels_argument(parser)
    add_arguments(parser, required=False)
    args = parser.parse_args(argv)
    start = time.time()
    failed = {}
    try:
        make_lr = prepare_lr_maker(args.out, args.lr, args.scales, args.radiometry, args.mtf, args.noise, args.seed)
        splits, jobs = plan(args.src, args.out, args.dataset, args.scales, args.seed, args.fractions)
        if args.denoise:  # denoised HR copies first, then LR from them
            strength, options = settings_from(args, args.denoise)
            targets = denoise_splits(args.src, args.out, splits, args.denoise, strength, options, args.workers)
            denoised = {osp.join(args.src, rel): dst for pairs in targets.values() for rel, dst in pairs}
            jobs = [(denoised[src], denoised[src], lr, scale) for src, _, lr, scale in jobs if lr]
        with Pool(args.workers) as pool:
            work = pool.imap_unordered(partial(run_job, max_pixels=args.max_pixels, make_lr=make_lr), jobs)
            for job, error in tqdm(work, total=len(jobs), desc='HR copies / LR images'):
                if error:
                    failed.setdefault(job[0], error)  # one line per HR, whatever the number of scales
    except (ImageError, FileNotFoundError, ValueError, OSError, ImportError) as error:
        sys.exit(f'prepare_dataset: {error}')
    if failed:
        sys.exit(
            f'prepare_dataset: {len(failed)} HR image(s) are bad and were not copied; the others are done. '
            'Replace them and run again, or remove them from the split files in '
            f'{args.out}/splits/:\n  ' + '\n  '.join(failed[k] for k in sorted(failed))
        )
    counts = ', '.join(f'{name} {len(files)}' for name, files in splits.items())
    print(
        f'{args.out}: {counts} images; {len(jobs)} files written in {time.time() - start:.1f} s '
        f'(scales {args.scales}); splits in {args.out}/splits/'
    )


if __name__ == '__main__':
    main()
