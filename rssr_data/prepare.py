"""Split lists and MATLAB-bicubic LR images for the remote-sensing data sets.

Layout written by :func:`prepare` (read by the dataset presets)::

    <out>/splits/{train,val,test}.txt     relative HR paths, one per line
    <out>/<split>/HR/<class>/<image>      the original HR files, unchanged
    <out>/<split>/LR_x<s>/<class>/<stem>.png

LR = ``imresize(modcrop(HR, s), 1/s)`` with BasicSR's MATLAB kernel, rounded
back to the HR file's bit depth (8 or 16 bits), as the official
``generate_mod_LR_bic.m`` does for 8 bits.
"""

import os
import random
import shutil
from collections import defaultdict
from os import path as osp

import cv2

from .degradations import bicubic_lr
from .image_io import decode, scan_images

SPLITS = ('train', 'val', 'test')
# Per-class counts (train, val, test) where a paper fixes them; other images of the class are unused.
PER_CLASS_COUNTS = {'nwpu': (45, 5, 50)}


def make_splits(rel_paths, dataset, seed=0, fractions=(0.8, 0.1, 0.1)):
    """Split image paths per class (their first folder), seeded; returns {split: sorted paths}."""
    by_class = defaultdict(list)
    for rel in sorted(rel_paths):
        by_class[rel.split(os.sep)[0] if os.sep in rel else ''].append(rel)
    rng = random.Random(seed)
    splits = {name: [] for name in SPLITS}
    for cls in sorted(by_class):
        files = by_class[cls]
        rng.shuffle(files)
        if dataset in PER_CLASS_COUNTS:
            counts = PER_CLASS_COUNTS[dataset]
            if sum(counts) > len(files):
                raise ValueError(
                    f'class {cls!r} has {len(files)} images, fewer than the {sum(counts)} the '
                    f'{dataset} protocol needs; is the download complete?'
                )
        else:
            n_train = round(fractions[0] * len(files))
            n_val = round(fractions[1] * len(files))
            counts = (n_train, n_val, len(files) - n_train - n_val)
        start = 0
        for name, count in zip(SPLITS, counts):
            splits[name] += files[start : start + count]
            start += count
    return {name: sorted(files) for name, files in splits.items()}


def write_lr(hr_path, lr_path, scale):
    """MATLAB-bicubic LR of the HR file, in its bit depth, written atomically to ``lr_path``."""
    with open(hr_path, 'rb') as f:
        content = f.read()
    save_lr(decode(content, hr_path, to_float=False), lr_path, scale)  # decode validates: corrupt, bands, depth


def save_lr(hr, lr_path, scale):
    """Write :func:`~rssr_data.degradations.bicubic_lr` of ``hr`` (BGR HWC array) to ``lr_path``, atomically."""
    lr = bicubic_lr(hr, scale)
    os.makedirs(osp.dirname(lr_path), exist_ok=True)
    tmp = f'{lr_path}.{os.getpid()}.tmp.png'
    if not cv2.imwrite(tmp, lr):
        raise OSError(f'cannot write {tmp}; check free space and permissions.')
    os.replace(tmp, lr_path)  # an interrupted run never leaves a half-written LR image


def plan(src, out, dataset, scales, seed=0, fractions=(0.8, 0.1, 0.1)):
    """Write (or reuse) the split files and return the jobs still to do: (hr_src, hr_dst, lr_dst, scale).

    Existing split files are reused, so re-runs and resumed runs see the same split.
    """
    split_dir = osp.join(out, 'splits')
    if all(osp.isfile(osp.join(split_dir, f'{s}.txt')) for s in SPLITS):
        splits = {}
        for name in SPLITS:
            with open(osp.join(split_dir, f'{name}.txt')) as f:
                splits[name] = [line.strip() for line in f if line.strip()]
    else:
        splits = make_splits(scan_images(src), dataset, seed, fractions)
        os.makedirs(split_dir, exist_ok=True)
        for name, files in splits.items():
            with open(osp.join(split_dir, f'{name}.txt'), 'w') as f:
                f.writelines(p + '\n' for p in files)
    jobs = []
    for name, files in splits.items():
        for rel in files:
            hr_dst = osp.join(out, name, 'HR', rel)
            for scale in scales:
                lr_dst = osp.join(out, name, f'LR_x{scale}', osp.splitext(rel)[0] + '.png')
                if not osp.isfile(lr_dst):
                    jobs.append((osp.join(src, rel), hr_dst, lr_dst, scale))
            if not scales and not osp.isfile(hr_dst):
                jobs.append((osp.join(src, rel), hr_dst, None, None))
    return splits, jobs


def run_job(job):
    hr_src, hr_dst, lr_dst, scale = job
    if not osp.isfile(hr_dst):
        os.makedirs(osp.dirname(hr_dst), exist_ok=True)
        tmp = f'{hr_dst}.{os.getpid()}.tmp'  # jobs of several scales may copy the same HR at once
        shutil.copyfile(hr_src, tmp)
        os.replace(tmp, hr_dst)
    if lr_dst:
        write_lr(hr_src, lr_dst, scale)
    return job
