"""Pack image folders (or one split of them) into BasicSR LMDBs.

Examples:
  python scripts/create_lmdb.py --input datasets/UCMerced/train/HR --output datasets/UCMerced/train/HR.lmdb
  python scripts/create_lmdb.py --input datasets/NWPU-RESISC45/train/HR datasets/NWPU-RESISC45/train/LR_x8 \\
      --output datasets/NWPU-RESISC45/train/HR.lmdb datasets/NWPU-RESISC45/train/LR_x8.lmdb --verify

Class sub-folders are included; keys are relative paths without extension (UTF-8;
no dots), so the HR and LR databases of a data set have the same keys and BasicSR's
own PairedImageDataset reads them too (except keys with non-ASCII characters:
BasicSR encodes keys as ASCII; rssr's datasets read them, and a warning lists them).

All or nothing: every database is first written to <output>.tmp and, with
--verify, decoded back; only when all are complete are they renamed into place.
Every input file is read before the verdict, so one run lists all bad files
(empty, corrupt, truncated, above --max-pixels, not RGB/grey, clashing keys).
An existing output is kept unless --overwrite, and --overwrite only ever
replaces a folder that is an LMDB (data.mdb, lock.mdb, meta_info.txt and
nothing else); missing parent folders are made.
"""

import argparse
import os
import shutil
import sys
import time

import rssr_compat  # noqa: F401

from tqdm import tqdm

from rssr_data.prepare import split_entries
from rssr_utils.image_io import ImageError, add_max_pixels_argument, scan_images
from rssr_utils.lmdb_util import check_output, install, pack_lmdb, verify_lmdb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', nargs='+', required=True, help='image folder(s)')
    parser.add_argument('--output', nargs='+', required=True, help='one .lmdb folder per input')
    parser.add_argument(
        '--split',
        help='split file: pack only the relative paths it lists (HR names; LR files with the same stem are matched)',
    )
    parser.add_argument('--overwrite', action='store_true', help='replace existing .lmdb folders (LMDBs only)')
    parser.add_argument('--verify', action='store_true', help='decode every key before the databases are renamed')
    parser.add_argument('--workers', type=int, default=4, help='reader threads')
    parser.add_argument(
        '--format',
        default='bmp',
        choices=['bmp', 'png', 'npy'],
        help='value encoding: bmp (8-bit images, fastest reads; 16-bit ones are stored as PNG), png, or npy '
        '(any band count and type, e.g. multispectral GeoTIFFs, kept as stored; read with a radiometry)',
    )
    parser.add_argument('--compress-level', type=int, default=1, help='PNG level 0-9')
    add_max_pixels_argument(parser)
    args = parser.parse_args(argv)
    if len(args.input) != len(args.output):
        parser.error('give one --output per --input')
    if len({os.path.realpath(out) for out in args.output}) != len(args.output):
        parser.error('each --output must be a different folder')
    written, tmps = [], []
    try:
        for out in args.output:  # refuse before writing anything
            check_output(out, args.overwrite, args.input)
        for folder, out in zip(args.input, args.output):
            files = scan_images(folder)
            if args.split:
                stems = {os.path.splitext(p)[0] for p in split_entries(args.split)}
                files = [f for f in files if os.path.splitext(f)[0] in stems]
            start, tmp = time.time(), out + '.tmp'
            if os.path.exists(tmp):  # a leftover of an interrupted run (check_output made sure it is an LMDB)
                shutil.rmtree(tmp)
            tmps.append(tmp)
            with tqdm(total=len(files), desc=os.path.basename(out), unit='img') as bar:
                keys = pack_lmdb(
                    folder,
                    files,
                    tmp,
                    compress_level=args.compress_level,
                    workers=args.workers,
                    progress=bar.update,
                    fmt=args.format,
                    max_pixels=args.max_pixels,
                )
            checked = f', verified {verify_lmdb(tmp)} keys' if args.verify else ''
            print(f'{out}: {len(keys)} images from {folder} in {time.time() - start:.1f} s{checked}')
            foreign = [k for k in keys if not k.isascii()]
            if foreign:
                print(
                    f'create_lmdb: warning: {len(foreign)} key(s) of {out} are not ASCII (e.g. {foreign[0]!r}): '
                    "rssr's datasets read them, BasicSR's own LMDB backend cannot (it encodes keys as ASCII).",
                    file=sys.stderr,
                )
        for tmp, out in zip(tmps, args.output):
            install(tmp, out)
            written.append(out)
    except (ImageError, OSError, ValueError, KeyError) as error:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        done = f'written: {", ".join(written)}; not written: ' if written else 'nothing was written: '
        todo = ', '.join(out for out in args.output if out not in written)
        sys.exit(f'create_lmdb: {error}\ncreate_lmdb: {done}{todo}')


if __name__ == '__main__':
    main()
