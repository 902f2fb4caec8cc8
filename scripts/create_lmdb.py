"""Pack image folders (or one split of them) into BasicSR LMDBs.

Examples:
  python scripts/create_lmdb.py --input datasets/UCMerced/train/HR --output datasets/UCMerced/train/HR.lmdb
  python scripts/create_lmdb.py --input datasets/NWPU-RESISC45/train/HR datasets/NWPU-RESISC45/train/LR_x8 \\
      --output datasets/NWPU-RESISC45/train/HR.lmdb datasets/NWPU-RESISC45/train/LR_x8.lmdb --verify

Class sub-folders are included; keys are relative paths without extension, so the
HR and LR databases of a data set have the same keys and BasicSR's own
PairedImageDataset reads them too. Each database is written to a temporary
folder and renamed when complete; an existing one is kept unless --overwrite.
"""

import argparse
import os
import sys
import time

import rssr_compat  # noqa: F401

from tqdm import tqdm

from rssr_data.image_io import ImageError, scan_images
from rssr_data.lmdb_util import verify_lmdb, write_lmdb
from rssr_data.rs_paired_dataset import split_entries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', nargs='+', required=True, help='image folder(s)')
    parser.add_argument('--output', nargs='+', required=True, help='one .lmdb folder per input')
    parser.add_argument(
        '--split',
        help='split file: pack only the relative paths it lists (HR names; LR files with the same stem are matched)',
    )
    parser.add_argument('--overwrite', action='store_true', help='replace existing .lmdb folders')
    parser.add_argument('--verify', action='store_true', help='decode every key after writing')
    parser.add_argument('--workers', type=int, default=4, help='reader threads')
    parser.add_argument(
        '--format',
        default='bmp',
        choices=['bmp', 'png'],
        help='value encoding: bmp (8-bit images, fastest reads; 16-bit ones are stored as PNG) or png',
    )
    parser.add_argument('--compress-level', type=int, default=1, help='PNG level 0-9')
    args = parser.parse_args(argv)
    if len(args.input) != len(args.output):
        parser.error('give one --output per --input')
    for out in args.output:  # refuse before writing anything
        if os.path.exists(out) and not args.overwrite:
            parser.error(f'{out} exists; pass --overwrite to replace it.')
    try:
        for folder, out in zip(args.input, args.output):
            files = scan_images(folder)
            if args.split:
                stems = {os.path.splitext(p)[0] for p in split_entries(args.split)}
                files = [f for f in files if os.path.splitext(f)[0] in stems]
            start = time.time()
            with tqdm(total=len(files), desc=os.path.basename(out), unit='img') as bar:
                count = write_lmdb(
                    folder,
                    files,
                    out,
                    overwrite=args.overwrite,
                    compress_level=args.compress_level,
                    workers=args.workers,
                    progress=bar.update,
                    fmt=args.format,
                )
            checked = f', verified {verify_lmdb(out)} keys' if args.verify else ''
            print(f'{out}: {count} images from {folder} in {time.time() - start:.1f} s{checked}')
    except (ImageError, FileNotFoundError, FileExistsError, ValueError, KeyError) as error:
        sys.exit(f'create_lmdb: {error}')


if __name__ == '__main__':
    main()
