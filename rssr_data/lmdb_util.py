"""Write image folders into BasicSR-compatible LMDBs, atomically.

Layout (BasicSR's): ``<name>.lmdb/{data.mdb, lock.mdb, meta_info.txt}``; each
meta line is ``<key>.png (h,w,c) <png level>``; a key is the image's path
relative to the folder, without extension (so keys have no dots and HR/LR keys
of a pair are equal). Values are lossless encoded images that ``cv2.imdecode``
(and so BasicSR) reads: BMP for 8-bit images by default, since it decodes about
20x faster than PNG, and PNG for 16-bit ones (or for all with ``fmt='png'``).
"""

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import cv2
import lmdb
import numpy as np

from .image_io import ImageError, decode


def image_key(rel_path):
    key = osp.splitext(rel_path)[0].replace(os.sep, '/')
    if '.' in key:
        raise ValueError(f'{rel_path}: BasicSR LMDB keys cannot contain dots; rename the file.')
    return key


def _encode(root, rel, level, fmt):
    path = osp.join(root, rel)
    with open(path, 'rb') as f:
        content = f.read()
    decode(content, path)  # refuse corrupt / 4-band / odd-type files before anything is written
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    ext = 'bmp' if fmt == 'bmp' and img.dtype == np.uint8 else 'png'
    ok, buf = cv2.imencode('.' + ext, img, [cv2.IMWRITE_PNG_COMPRESSION, level] if ext == 'png' else [])
    if not ok:
        raise ImageError(f'{path}: cannot be encoded as {ext.upper()}.')
    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    return image_key(rel), buf.tobytes(), f'{ext} ({h},{w},{c})'


def write_lmdb(
    root, rel_paths, lmdb_path, overwrite=False, compress_level=1, workers=4, map_size=None, progress=None, fmt='bmp'
):
    """Pack ``root/rel_paths`` into ``lmdb_path`` (must end in '.lmdb') and return the number of images.

    The database is written to ``<lmdb_path>.tmp`` and renamed when complete, so an
    interrupted run never leaves a database that looks whole. An existing
    ``lmdb_path`` is refused unless ``overwrite``; the map grows when full.
    Files are read and encoded by ``workers`` threads.
    """
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'{lmdb_path}: the LMDB folder name must end with .lmdb (BasicSR checks it).')
    if osp.exists(lmdb_path) and not overwrite:
        raise FileExistsError(f'{lmdb_path} exists; pass --overwrite to replace it (nothing was written).')
    tmp = lmdb_path + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    size = map_size or max(1 << 26, 2 * sum(osp.getsize(osp.join(root, r)) for r in rel_paths))
    env = lmdb.open(tmp, map_size=size)
    meta, batch = [], []

    def commit():
        nonlocal size
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in batch:
                        txn.put(key.encode('ascii'), value)
                break
            except lmdb.MapFullError:  # the aborted transaction is retried with a larger map
                size *= 2
                env.set_mapsize(size)
        batch.clear()

    try:
        with ThreadPoolExecutor(workers) as pool:
            for key, value, described in pool.map(lambda rel: _encode(root, rel, compress_level, fmt), rel_paths):
                batch.append((key, value))
                meta.append(f'{key}.{described} {compress_level}\n')
                if len(batch) == 256:
                    commit()
                if progress:
                    progress()
        commit()
    finally:
        env.close()
    with open(osp.join(tmp, 'meta_info.txt'), 'w') as f:
        f.writelines(meta)
    if osp.exists(lmdb_path):
        shutil.rmtree(lmdb_path)
    os.rename(tmp, lmdb_path)
    return len(meta)


def verify_lmdb(lmdb_path):
    """Decode every key listed in meta_info.txt and check its shape; return the number checked."""
    with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
        entries = [line.split() for line in f if line.strip()]
    env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for name, shape, _ in entries:
                key = name.split('.')[0]
                value = txn.get(key.encode('ascii'))
                if value is None:
                    raise KeyError(f'{lmdb_path}: key {key} is listed in meta_info.txt but missing; rebuild it.')
                img = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
                h, w, c = (int(v) for v in shape.strip('()').split(','))
                got = img.shape[:2] + ((1 if img.ndim == 2 else img.shape[2]),) if img is not None else None
                if got != (h, w, c):
                    raise ValueError(f'{lmdb_path}: key {key} decodes to {got}, meta_info.txt says {(h, w, c)}.')
    finally:
        env.close()
    return len(entries)
