"""Crop large scenes (AID, RSSR25) into overlapping sub-images, with LR crops aligned to HR.

Usage:
  python scripts/extract_subimages.py --hr datasets/RSSR25/train/HR --lr datasets/RSSR25/train/LR --scale 4 \\
      --out datasets/RSSR25_sub/train --crop-size 480 --step 240

For every HR image (class sub-folders kept) the crops start every --step pixels;
a last crop flush with the border is added when the leftover exceeds --thresh-size
(as BasicSR's extract_subimages.py). LR crops are the matching windows of the LR
image (crop and step must be multiples of the scale). Outputs are lossless PNG,
<stem>_s<NNN>.png, written atomically.

<out>/crops.jsonl records the settings (first line) and every crop before it is
written. A re-run with the same settings resumes (existing crops are kept); a
re-run with other settings is refused unless --overwrite, which deletes the
recorded crops (and nothing else) first. An --out holding crops but no record
is refused. Bad scenes (empty, corrupt, above --max-pixels, not RGB/grey, LR
of the wrong size) are listed at the end and the others are cropped; the exit
status is then non-zero.
"""

import argparse
import glob
import json
import os
import re
import sys
from functools import partial
from multiprocessing import Pool
from os import path as osp

import rssr_compat  # noqa: F401

from tqdm import tqdm

from rssr_utils.guards import check_apart, non_negative_int, positive_int
from rssr_utils.image_io import (
    IMG_EXTENSIONS,
    ImageError,
    add_max_pixels_argument,
    read_raw,
    safe_relpath,
    scan_images,
    write_image,
)

MANIFEST = 'crops.jsonl'


def starts(length, crop, step, thresh):
    if length < crop:
        return []
    positions = list(range(0, length - crop + 1, step))
    if length - crop - positions[-1] > thresh:
        positions.append(length - crop)
    return positions


def settings(args):
    """What decides the crops: a re-run with other settings must not mix its crops with these."""
    return {
        'hr': osp.abspath(args.hr),
        'lr': osp.abspath(args.lr) if args.lr else None,
        'scale': args.scale,
        'crop_size': args.crop_size,
        'step': args.step,
        'thresh_size': args.thresh_size,
    }


def read_manifest(out):
    """(settings, crop names) recorded in ``<out>/crops.jsonl``, or (None, []) without one."""
    path = osp.join(out, MANIFEST)
    if not osp.isfile(path):
        return None, []
    with open(path, encoding='utf-8') as f:
        lines = [json.loads(line) for line in f if line.endswith('\n')]  # a line cut by a kill is ignored
    return (lines[0], lines[1:]) if lines else (None, [])


def remove_recorded(out, names):
    """Delete the crops named in the manifest (and their temporary files), then the manifest."""
    for name in set(names):
        if not re.search(r'_s\d{3,}\.png$', name):  # not a crop name: a hand-edited record, leave it
            continue
        name = safe_relpath(name, osp.join(out, MANIFEST))
        for folder in ('HR', 'LR'):
            crop = osp.join(out, folder, name)
            for path in [crop, crop + '.tmp.png', *glob.glob(glob.escape(crop) + '.*.tmp')]:  # write_image's tmp
                if osp.isfile(path):
                    os.remove(path)
    os.remove(osp.join(out, MANIFEST))


def start_manifest(args):
    """Check ``--out`` against its record; returns True when crops of the same settings may be resumed."""
    wanted = settings(args)
    recorded, names = read_manifest(args.out)
    if recorded == wanted:
        return True
    if recorded is not None:
        if not args.overwrite:
            raise FileExistsError(
                f'{args.out} holds {len(set(names))} crops made with other settings ({recorded}); pass --overwrite '
                'to delete them first, or choose another --out.'
            )
        remove_recorded(args.out, names)
    else:
        found = [
            osp.join(dirpath, f)
            for folder in ('HR', 'LR')
            for dirpath, _, files in os.walk(osp.join(args.out, folder))
            for f in files
            if f.lower().endswith(IMG_EXTENSIONS)
        ]
        if found:
            raise FileExistsError(
                f'{args.out} holds images not recorded in {MANIFEST} (e.g. {found[0]}), so this tool did not write '
                'them (or an older version did) and will not mix its crops with them; choose an empty --out.'
            )
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, MANIFEST), 'w', encoding='utf-8') as f:
        f.write(json.dumps(wanted) + '\n')
    return False


def crop_one(rel, args):
    """Crop one scene; returns ``(crops, written, error message or None)``."""
    try:
        return crop_scene(rel, args) + (None,)
    except (ImageError, OSError) as error:
        return 0, 0, str(error)


def crop_scene(rel, args):
    hr_path = osp.join(args.hr, rel)
    hr = read_raw(hr_path, args.max_pixels)  # empty / corrupt / too large / 4-band / odd-type files are named
    lr = None
    s = args.scale
    if args.lr:
        stem = osp.splitext(rel)[0]
        candidates = [osp.join(args.lr, stem + ext) for ext in ('.png', '.jpg', '.tif', '.tiff', osp.splitext(rel)[1])]
        lr_path = next((p for p in candidates if osp.isfile(p)), None)
        if lr_path is None:
            raise ImageError(f'{hr_path}: no LR partner under {args.lr} (looked for {stem}.*).')
        lr = read_raw(lr_path, args.max_pixels)
        if lr.shape[0] != hr.shape[0] // s or lr.shape[1] != hr.shape[1] // s:
            raise ImageError(
                f'{hr_path} is {hr.shape[0]}x{hr.shape[1]} but {lr_path} is {lr.shape[0]}x{lr.shape[1]}, not HR/{s}.'
            )
    written = 0
    index = 0
    # One line per crop, recorded before the crop is written: --overwrite finds every crop a killed run left.
    with open(osp.join(args.out, MANIFEST), 'a', encoding='utf-8') as record:
        for y in starts(hr.shape[0], args.crop_size, args.step, args.thresh_size):
            for x in starts(hr.shape[1], args.crop_size, args.step, args.thresh_size):
                name = f'{osp.splitext(rel)[0]}_s{index:03d}.png'
                index += 1
                hr_out = osp.join(args.out, 'HR', name)
                if osp.isfile(hr_out) and (lr is None or osp.isfile(osp.join(args.out, 'LR', name))):
                    continue
                record.write(json.dumps(name) + '\n')
                record.flush()
                if lr is not None:
                    write_image(
                        osp.join(args.out, 'LR', name),
                        lr[y // s : (y + args.crop_size) // s, x // s : (x + args.crop_size) // s],
                    )
                write_image(hr_out, hr[y : y + args.crop_size, x : x + args.crop_size])
                written += 1
    return index, written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr', required=True, help='HR folder')
    parser.add_argument('--lr', help='LR folder (same relative names, any image extension)')
    parser.add_argument('--scale', type=positive_int, default=1, help='HR/LR factor (needed with --lr)')
    parser.add_argument('--out', required=True, help='writes <out>/HR and <out>/LR')
    parser.add_argument('--crop-size', type=positive_int, default=480, help='HR crop side')
    parser.add_argument('--step', type=positive_int, default=240, help='HR stride between crops')
    parser.add_argument(
        '--thresh-size', type=non_negative_int, default=0, help='add a border-flush crop when more is left'
    )
    parser.add_argument('--workers', type=positive_int, default=2)
    parser.add_argument('--overwrite', action='store_true', help=f'delete the crops recorded in <out>/{MANIFEST} first')
    add_max_pixels_argument(parser)
    args = parser.parse_args(argv)
    if args.crop_size % args.scale or args.step % args.scale:
        parser.error(f'--crop-size and --step must be multiples of --scale {args.scale} to keep LR aligned.')
    try:
        check_apart(args.out, [args.hr, args.lr], '--out')
        files = scan_images(args.hr)
        start_manifest(args)
        crops = written = 0
        failed = []
        with Pool(args.workers) as pool:
            for c, w, error in tqdm(pool.imap(partial(crop_one, args=args), files), total=len(files), desc='scenes'):
                crops, written = crops + c, written + w
                if error:
                    failed.append(error)
    except (ImageError, FileNotFoundError, FileExistsError, OSError, ValueError) as error:
        sys.exit(f'extract_subimages: {error}')
    print(f'{len(files)} scenes -> {crops} crops of {args.crop_size}px in {args.out} ({written} written now)')
    if failed:
        sys.exit(
            f'extract_subimages: {len(failed)} of {len(files)} scene(s) failed; fix or remove them and run again '
            '(the crops made are kept):\n  ' + '\n  '.join(failed)
        )


if __name__ == '__main__':
    main()
