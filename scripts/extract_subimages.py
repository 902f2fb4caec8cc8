"""Crop large scenes (AID, RSSR25) into overlapping sub-images, with LR crops aligned to HR.

Usage:
  python scripts/extract_subimages.py --hr datasets/RSSR25/train/HR --lr datasets/RSSR25/train/LR --scale 4 \\
      --out datasets/RSSR25_sub/train --crop-size 480 --step 240

For every HR image (class sub-folders kept) the crops start every --step pixels;
a last crop flush with the border is added when the leftover exceeds --thresh-size
(as BasicSR's extract_subimages.py). LR crops are the matching windows of the LR
image (crop and step must be multiples of the scale). Outputs are lossless PNG,
<stem>_s<NNN>.png, written atomically; existing crops are kept, so an interrupted
run resumes.
"""

import argparse
import os
import sys
from functools import partial
from multiprocessing import Pool
from os import path as osp

import rssr_compat  # noqa: F401

import cv2
from tqdm import tqdm

from rssr_data.image_io import ImageError, decode, scan_images


def starts(length, crop, step, thresh):
    if length < crop:
        return []
    positions = list(range(0, length - crop + 1, step))
    if length - crop - positions[-1] > thresh:
        positions.append(length - crop)
    return positions


def _write(img, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp.png'
    if not cv2.imwrite(tmp, img):
        raise OSError(f'cannot write {tmp}')
    os.replace(tmp, path)


def crop_one(rel, args):
    hr_path = osp.join(args.hr, rel)
    with open(hr_path, 'rb') as f:
        decode(f.read(), hr_path)  # clear errors for corrupt / 4-band / odd-type files
    hr = cv2.imread(hr_path, cv2.IMREAD_UNCHANGED)
    lr = None
    s = args.scale
    if args.lr:
        stem = osp.splitext(rel)[0]
        candidates = [osp.join(args.lr, stem + ext) for ext in ('.png', '.jpg', '.tif', '.tiff', osp.splitext(rel)[1])]
        lr_path = next((p for p in candidates if osp.isfile(p)), None)
        if lr_path is None:
            raise ImageError(f'{hr_path}: no LR partner under {args.lr} (looked for {stem}.*).')
        lr = cv2.imread(lr_path, cv2.IMREAD_UNCHANGED)
        if lr.shape[0] != hr.shape[0] // s or lr.shape[1] != hr.shape[1] // s:
            raise ImageError(
                f'{hr_path} is {hr.shape[0]}x{hr.shape[1]} but {lr_path} is {lr.shape[0]}x{lr.shape[1]}, not HR/{s}.'
            )
    written = 0
    index = 0
    for y in starts(hr.shape[0], args.crop_size, args.step, args.thresh_size):
        for x in starts(hr.shape[1], args.crop_size, args.step, args.thresh_size):
            name = f'{osp.splitext(rel)[0]}_s{index:03d}.png'
            index += 1
            hr_out = osp.join(args.out, 'HR', name)
            if osp.isfile(hr_out) and (lr is None or osp.isfile(osp.join(args.out, 'LR', name))):
                continue
            if lr is not None:
                _write(
                    lr[y // s : (y + args.crop_size) // s, x // s : (x + args.crop_size) // s],
                    osp.join(args.out, 'LR', name),
                )
            _write(hr[y : y + args.crop_size, x : x + args.crop_size], hr_out)
            written += 1
    return index, written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr', required=True, help='HR folder')
    parser.add_argument('--lr', help='LR folder (same relative names, any image extension)')
    parser.add_argument('--scale', type=int, default=1, help='HR/LR factor (needed with --lr)')
    parser.add_argument('--out', required=True, help='writes <out>/HR and <out>/LR')
    parser.add_argument('--crop-size', type=int, default=480, help='HR crop side')
    parser.add_argument('--step', type=int, default=240, help='HR stride between crops')
    parser.add_argument('--thresh-size', type=int, default=0, help='add a border-flush crop when more is left')
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    if args.crop_size % args.scale or args.step % args.scale:
        parser.error(f'--crop-size and --step must be multiples of --scale {args.scale} to keep LR aligned.')
    try:
        files = scan_images(args.hr)
        crops = written = 0
        with Pool(args.workers) as pool:
            for c, w in tqdm(pool.imap(partial(crop_one, args=args), files), total=len(files), desc='scenes'):
                crops, written = crops + c, written + w
    except (ImageError, FileNotFoundError, OSError) as error:
        sys.exit(f'extract_subimages: {error}')
    print(f'{len(files)} scenes -> {crops} crops of {args.crop_size}px in {args.out} ({written} written now)')


if __name__ == '__main__':
    main()
