"""Split lists and MATLAB-bicubic LR images for the remote-sensing data sets.

Layout written by :func:`prepare` (read by the dataset presets)::

    <out>/splits/{train,val,test}.txt     relative HR paths, one per line (UTF-8)
    <out>/<split>/HR/<class>/<image>      the original HR files, unchanged
    <out>/<split>/LR_x<s>/<class>/<stem>.png

LR = ``imresize(modcrop(HR, s), 1/s)`` with BasicSR's MATLAB kernel, rounded
back to the HR file's bit depth (8 or 16 bits), as the official
``generate_mod_LR_bic.m`` does for 8 bits; or, given ``make_lr`` (e.g.
:class:`~rssr_data.sensor_degradations.SensorLR`), ``make_lr(HR, s, key)``
with the HR file's SHA-256 as the key of its seed.
"""

import hashlib
import os
import random
import re
from collections import defaultdict
from os import path as osp

from rssr_utils.image_io import MAX_PIXELS, ImageError, decode, read_bytes, safe_relpath, scan_images, write_image

from .degradations import bicubic_lr

SPLITS = ('train', 'val', 'test')
# Per-class counts (train, val, test) where a paper fixes them; other images of the class are unused.
PER_CLASS_COUNTS = {'nwpu': (45, 5, 50)}


# BasicSR meta_info lines carry a shape (and a PNG level) after the name: 'a b.png (480,480,3) 1'.
_META_SUFFIX = re.compile(r' \(\d+,\d+,\d+\)( \d+)?$')


def split_entries(split_file):
    """Relative image paths listed one per line in a split file (spaces in names kept).

    BasicSR meta_info files (``name (h,w,c) [level]``) are read too. Entries that
    would leave the data folder (absolute, ``..``) are refused, naming the file.
    """
    if not osp.isfile(split_file):
        raise FileNotFoundError(
            f'Split file {split_file} does not exist; write it with scripts/prepare_dataset.py or fix meta_info_file.'
        )
    with open(split_file, encoding='utf-8') as f:
        lines = [line.strip() for line in f]
    return [safe_relpath(_META_SUFFIX.sub('', line), split_file) for line in lines if line]


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


def read_hr(hr_path, scale, max_pixels=MAX_PIXELS):
    """The bytes and decoded integer array of an HR file, validated (see :mod:`rssr_utils.image_io`).

    An HR smaller than ``scale`` (no LR pixel) is refused, naming the file.
    """
    content = read_bytes(hr_path)
    hr = decode(content, hr_path, to_float=False, max_pixels=max_pixels)  # corrupt, size, bands, depth
    if scale and min(hr.shape[:2]) < scale:
        raise ImageError(
            f'{hr_path}: is {hr.shape[0]}x{hr.shape[1]}, smaller than the scale {scale}, so its LR would be '
            'empty; remove it from the data set.'
        )
    return content, hr


def write_lr(hr_path, lr_path, scale, max_pixels=MAX_PIXELS):
    """MATLAB-bicubic LR of the HR file, in its bit depth, written atomically to ``lr_path``."""
    save_lr(read_hr(hr_path, scale, max_pixels)[1], lr_path, scale)


def save_lr(hr, lr_path, scale, make_lr=None, key=None):
    """Write :func:`~rssr_data.degradations.bicubic_lr` of ``hr`` (BGR HWC array), or ``make_lr(hr, scale, key)``,
    to ``lr_path``, atomically."""
    lr = bicubic_lr(hr, scale) if make_lr is None else make_lr(hr, scale, key)
    write_image(lr_path, lr)  # an interrupted run never leaves a half-written LR image


def plan(src, out, dataset, scales, seed=0, fractions=(0.8, 0.1, 0.1)):
    """Write (or reuse) the split files and return the jobs still to do: (hr_src, hr_dst, lr_dst, scale).

    Existing split files are reused, so re-runs and resumed runs see the same split.
    """
    split_dir = osp.join(out, 'splits')
    if all(osp.isfile(osp.join(split_dir, f'{s}.txt')) for s in SPLITS):
        splits = {name: split_entries(osp.join(split_dir, f'{name}.txt')) for name in SPLITS}
    else:
        splits = make_splits(scan_images(src), dataset, seed, fractions)
        os.makedirs(split_dir, exist_ok=True)
        for name, files in splits.items():
            for rel in files:
                if '\n' in rel or '\r' in rel:
                    raise ValueError(f'{osp.join(src, rel)!r}: a line break in a name cannot go in a split list.')
            path = osp.join(split_dir, f'{name}.txt')
            with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
                f.writelines(p + '\n' for p in files)
            os.replace(f'{path}.tmp', path)
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


def run_job(job, max_pixels=MAX_PIXELS, make_lr=None):
    """Copy one HR file (after validating it) and write its LR; returns ``(job, error message or None)``.

    A bad HR is neither copied nor downscaled, so the output never holds an HR without its LR.
    ``make_lr`` makes the LR instead of MATLAB bicubic (see :func:`save_lr`).
    """
    hr_src, hr_dst, lr_dst, scale = job
    try:
        content, hr = read_hr(hr_src, scale, max_pixels)
        if not osp.isfile(hr_dst):
            os.makedirs(osp.dirname(hr_dst), exist_ok=True)
            tmp = f'{hr_dst}.{os.getpid()}.tmp'  # jobs of several scales may copy the same HR at once
            with open(tmp, 'wb') as f:
                f.write(content)
            os.replace(tmp, hr_dst)
        if lr_dst:
            save_lr(hr, lr_dst, scale, make_lr, make_lr and hashlib.sha256(content).hexdigest())
    except (ImageError, OSError) as error:
        return job, str(error)
    return job, None
