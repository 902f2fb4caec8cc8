"""Write image folders into BasicSR-compatible LMDBs, atomically.

Layout (BasicSR's): ``<name>.lmdb/{data.mdb, lock.mdb, meta_info.txt}``; each
meta line is ``<key>.<ext> (h,w,c) <png level>``, UTF-8. A key is the image's
path relative to the folder, without extension (so HR/LR keys of a pair are
equal), stored as UTF-8 bytes. Keys cannot contain dots or line breaks: BasicSR
(``paired_paths_from_lmdb``) and :func:`meta_keys` take everything before the
first dot of a line as the key, which keeps keys with spaces intact. BasicSR's
own LMDB backend encodes keys as ASCII, so it cannot read keys with non-ASCII
characters (rssr's datasets can; ``create_lmdb.py`` warns).

Values are lossless encoded images that ``cv2.imdecode`` (and so BasicSR)
reads: BMP for 8-bit images by default, since it decodes about 20x faster than
PNG, and PNG for 16-bit ones (or for all with ``fmt='png'``). With
``fmt='npy'`` every image is stored as the ``.npy`` bytes of its bands as the
file holds them (1 to 16 bands, any type, band 1 first: multispectral
GeoTIFFs), listed as ``<key>.npy (h,w,c)``; rssr's datasets read them with a
radiometry (:func:`rssr_utils.image_io.decode_bands`), BasicSR's cannot.
"""

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import cv2
import lmdb
import numpy as np

from .image_io import (
    MAX_PIXELS,
    NPY_MAGIC,
    ImageError,
    decode_bands,
    encode_npy,
    path_key,
    read_bands,
    read_raw,
    safe_relpath,
)

LMDB_FILES = {'data.mdb', 'lock.mdb', 'meta_info.txt'}


def image_key(rel_path):
    """LMDB key of an image: its relative path without extension, '/'-separated."""
    key = path_key(rel_path)
    if '.' in key:
        raise ValueError(f'{rel_path}: BasicSR LMDB keys cannot contain dots; rename the file.')
    if '\n' in key or '\r' in key:
        raise ValueError(f'{rel_path!r}: the name holds a line break, which meta_info.txt cannot list; rename it.')
    try:
        key.encode('utf-8')
    except UnicodeEncodeError as error:
        raise ValueError(f'{rel_path!r}: the name is not valid UTF-8; rename the file.') from error
    return key


def meta_keys(lmdb_path):
    """Keys listed in ``<lmdb>/meta_info.txt``, parsed as BasicSR does (all before the first dot)."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise FileNotFoundError(
            f'{meta} is missing: {lmdb_path} is not a complete BasicSR LMDB; rebuild it with scripts/create_lmdb.py.'
        )
    with open(meta, encoding='utf-8') as f:
        keys = [line.rstrip('\r\n').split('.')[0] for line in f if line.strip()]
    for key in keys:
        safe_relpath(key, meta)
    return keys


def is_lmdb_folder(path):
    """True for a folder holding an LMDB and nothing else (what :func:`write_lmdb` writes)."""
    if not osp.isdir(path) or osp.islink(path):
        return False
    names = set(os.listdir(path))
    return 'data.mdb' in names and names <= LMDB_FILES


def check_output(lmdb_path, overwrite=False, inputs=()):
    """Refuse an output that is not ours to write: bad name, existing (without ``overwrite``) or not an LMDB.

    Args:
        lmdb_path (str): The ``.lmdb`` folder to write.
        overwrite (bool): Replace an existing LMDB (only one this module recognises).
        inputs (list[str]): Image folders being packed; none may lie inside ``lmdb_path``.
    """
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'{lmdb_path}: the LMDB folder name must end with .lmdb (BasicSR checks it).')
    out = osp.realpath(lmdb_path)
    for folder in inputs:
        if osp.commonpath([out, osp.realpath(folder)]) == out:
            raise ValueError(f'{lmdb_path}: the output would hold the input folder {folder}; choose another --output.')
    for path in (lmdb_path, lmdb_path + '.tmp', lmdb_path + '.old'):
        if osp.lexists(path) and not is_lmdb_folder(path):
            raise FileExistsError(
                f'{path} exists and is not an LMDB this tool wrote (it should hold only {sorted(LMDB_FILES)}); '
                'it is left alone: move it away or choose another --output.'
            )
    if osp.exists(lmdb_path) and not overwrite:
        raise FileExistsError(f'{lmdb_path} exists; pass --overwrite to replace it.')


def _encode_bands(root, rel, max_pixels):
    """An image of 1 to 16 bands and any type as ``.npy`` bytes: lossless, type and band count kept."""
    img = read_bands(osp.join(root, rel), max_pixels)
    h, w, c = img.shape
    return image_key(rel), encode_npy(img), f'npy ({h},{w},{c})'


def _decode_value(value):
    """An LMDB value as stored: ``.npy`` arrays (H, W, C) by numpy, encoded images by OpenCV (None if broken)."""
    if bytes(value[:6]) == NPY_MAGIC:
        return decode_bands(value, 'value')
    return cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)


def _encode(root, rel, level, fmt, max_pixels):
    if fmt == 'npy':
        return _encode_bands(root, rel, max_pixels)
    path = osp.join(root, rel)
    img = read_raw(path, max_pixels)  # refuses empty / corrupt / too large / 4-band / odd-type files
    ext = 'bmp' if fmt == 'bmp' and img.dtype == np.uint8 else 'png'
    ok, buf = cv2.imencode('.' + ext, img, [cv2.IMWRITE_PNG_COMPRESSION, level] if ext == 'png' else [])
    if not ok:
        raise ImageError(f'{path}: cannot be encoded as {ext.upper()}.')
    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    return image_key(rel), buf.tobytes(), f'{ext} ({h},{w},{c})'


def _file_size(path):
    try:
        return osp.getsize(path)
    except OSError:  # reported by name when the file is read
        return 0


def pack_lmdb(
    root,
    rel_paths,
    path,
    compress_level=1,
    workers=4,
    map_size=None,
    progress=None,
    fmt='bmp',
    max_pixels=MAX_PIXELS,
):
    """Pack ``root/rel_paths`` into a new LMDB folder ``path`` and return its keys.

    Every file is read before the verdict: bad files (unreadable, empty, corrupt,
    too large, wrong bands, clashing keys) are listed together in one
    :class:`ImageError`, and ``path`` is removed on any failure. The map grows
    when full; files are read and encoded by ``workers`` threads.
    """
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    size = map_size or max(1 << 26, 2 * sum(_file_size(osp.join(root, r)) for r in rel_paths))
    env = lmdb.open(path, map_size=size)
    meta, batch, bad, seen = [], [], [], {}

    def commit():
        nonlocal size
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in batch:
                        txn.put(key.encode('utf-8'), value)
                break
            except lmdb.MapFullError:  # the aborted transaction is retried with a larger map
                size *= 2
                env.set_mapsize(size)
        batch.clear()

    def encode(rel):
        try:
            return rel, _encode(root, rel, compress_level, fmt, max_pixels)
        except (ImageError, ValueError, OSError) as error:
            return rel, str(error)

    try:
        with ThreadPoolExecutor(workers) as pool:
            for rel, result in pool.map(encode, rel_paths):
                if progress:
                    progress()
                if isinstance(result, str):
                    bad.append(result)
                    continue
                key, value, described = result
                if key in seen:
                    bad.append(
                        f'{osp.join(root, rel)}: has the key {key!r} of {osp.join(root, seen[key])}; rename one.'
                    )
                    continue
                seen[key] = rel
                if bad:  # a failed pack is deleted: stop writing, keep reading to list every bad file
                    continue
                batch.append((key, value))
                meta.append(f'{key}.{described} {compress_level}\n')
                if len(batch) == 256:
                    commit()
        if bad:
            raise ImageError(
                f'{len(bad)} bad image(s) under {root}; fix or remove them and run again:\n  ' + '\n  '.join(bad)
            )
        commit()
        env.close()
        with open(osp.join(path, 'meta_info.txt'), 'w', encoding='utf-8') as f:
            f.writelines(meta)
    except BaseException:
        env.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return list(seen)


def install(tmp, lmdb_path):
    """Rename a finished ``tmp`` LMDB to ``lmdb_path``, replacing an LMDB there (checked by :func:`check_output`)."""
    old = lmdb_path + '.old'
    if osp.exists(lmdb_path):
        if osp.lexists(old) and is_lmdb_folder(old):
            shutil.rmtree(old)
        os.rename(lmdb_path, old)  # the new database appears in one rename; the old one goes afterwards
    os.rename(tmp, lmdb_path)
    if osp.exists(old):
        shutil.rmtree(old)


def write_lmdb(
    root,
    rel_paths,
    lmdb_path,
    overwrite=False,
    compress_level=1,
    workers=4,
    map_size=None,
    progress=None,
    fmt='bmp',
    max_pixels=MAX_PIXELS,
    verify=False,
):
    """Pack ``root/rel_paths`` into ``lmdb_path`` (must end in '.lmdb') and return the number of images.

    The database is written to ``<lmdb_path>.tmp``, checked with :func:`verify_lmdb`
    when ``verify``, and renamed when complete, so an interrupted or failed run
    never leaves a database that looks whole. An existing ``lmdb_path`` is
    refused unless ``overwrite``, and even then only an LMDB is replaced.
    """
    check_output(lmdb_path, overwrite, [root])
    tmp = lmdb_path + '.tmp'
    if osp.exists(tmp):  # a leftover of an interrupted run (checked to be an LMDB)
        shutil.rmtree(tmp)
    keys = pack_lmdb(root, rel_paths, tmp, compress_level, workers, map_size, progress, fmt, max_pixels)
    try:
        if verify:
            verify_lmdb(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    install(tmp, lmdb_path)
    return len(keys)


def verify_lmdb(lmdb_path):
    """Decode every key listed in meta_info.txt and check its shape; return the number checked."""
    with open(osp.join(lmdb_path, 'meta_info.txt'), encoding='utf-8') as f:
        entries = [line.rstrip('\r\n').rsplit(' ', 2) for line in f if line.strip()]
    env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for name, shape, _ in entries:
                key = name.split('.')[0]
                value = txn.get(key.encode('utf-8'))
                if value is None:
                    raise KeyError(f'{lmdb_path}: key {key} is listed in meta_info.txt but missing; rebuild it.')
                img = _decode_value(value)
                h, w, c = (int(v) for v in shape.strip('()').split(','))
                got = img.shape[:2] + ((1 if img.ndim == 2 else img.shape[2]),) if img is not None else None
                if got != (h, w, c):
                    raise ValueError(f'{lmdb_path}: key {key} decodes to {got}, meta_info.txt says {(h, w, c)}.')
    finally:
        env.close()
    return len(entries)
