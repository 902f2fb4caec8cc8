"""Synthetic Sentinel-2-like scenes: 4-band (B2, B3, B4, B8) uint16 GeoTIFFs the repo can make without a download.

A scene holds L2A digital numbers (reflectance = (DN - 1000) / 10000, the
``sentinel2_l2a`` radiometry), DN 0 as nodata over a slanted swath edge on the
left (as at the edge of a Sentinel-2 orbit), a UTM CRS and a 10 m
geotransform. Its texture is real photography: scikit-image's sample images,
mirrored over the scene, modulate a smooth land-cover field (vegetation, bare
soil and water, each with its own blue/green/red/NIR spectrum), so the bands
are correlated as in real data and the NIR band follows the vegetation.

Scenes are written in strips of rows: any size can be made (8192 x 8192 for
the memory tests) without holding it whole. :func:`write_lr_scene` makes the
matching low-resolution scene (mean of each ``scale`` x ``scale`` block, pixel
size x ``scale``), optionally starting some LR pixels further in, to test
pairing by geotransform.
"""

import functools
import os

import numpy as np

# Reflectance spectra (B2 blue, B3 green, B4 red, B8 NIR) of the three covers mixed into the scene.
SPECTRA = {
    'vegetation': np.array([0.03, 0.07, 0.04, 0.40]),
    'soil': np.array([0.10, 0.13, 0.17, 0.24]),
    'water': np.array([0.06, 0.05, 0.03, 0.01]),
}
BAND_NAMES = ('B2', 'B3', 'B4', 'B8')
CRS = 'EPSG:32633'  # UTM zone 33N, as a Sentinel-2 tile over central Europe
ORIGIN = (399960.0, 5300040.0)  # upper-left corner of Sentinel-2 tile 33TWN's grid, metres
PIXEL_SIZE = 10.0
NODATA = 0
_STRIP = 512  # rows computed and written at once (memory: _STRIP x width x 4 float32 values, a few times)


@functools.lru_cache(maxsize=1)
def _source_images():
    """scikit-image's colour samples as (H, W, 3) float32 RGB in [0, 1], the texture of the scenes."""
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]


def _mirror_index(coords, size):
    """Indices into an axis of ``size`` that mirror it endlessly (0 1 .. n-1 n-1 .. 1 0 0 1 ..)."""
    period = coords % (2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


def reflectance(rows, cols, seed=0):
    """Reflectance of the synthetic scene at the given pixel rows and columns.

    A pure function of (row, col, seed), so a scene can be made strip by strip and any part remade alone.

    Args:
        rows (np.ndarray): (H,) int row indices in the scene.
        cols (np.ndarray): (W,) int column indices in the scene.
        seed (int): Scene seed (picks the texture image, its offset and the land-cover field).

    Returns:
        np.ndarray: (H, W, 4) float32 reflectance of B2, B3, B4, B8, in about [0, 0.6].
    """
    rng = np.random.default_rng(seed)
    images = _source_images()
    image = images[int(rng.integers(len(images)))].astype(np.float32) / 255
    shift = rng.integers(0, 4096, size=2)
    r = _mirror_index(rows + shift[0], image.shape[0])
    c = _mirror_index(cols + shift[1], image.shape[1])
    texture = image.take(r, axis=0).take(c, axis=1)  # (H, W, 3) RGB
    luminance = texture.mean(axis=2, keepdims=True)
    # Land cover from a few random sinusoids over scene coordinates: smooth at the scale of hundreds of pixels.
    # sin(a + b) = sin a cos b + cos a sin b: outer products of row and column terms, cheap for big strips.
    field = np.zeros((2, len(rows), len(cols)), np.float32)
    for k in range(2):
        for _ in range(3):
            fy, fx = rng.uniform(-1, 1, size=2) * 2 * np.pi / 300
            a, b = fy * rows + rng.uniform(0, 2 * np.pi), fx * cols
            field[k] += np.outer(np.sin(a), np.cos(b)).astype(np.float32)
            field[k] += np.outer(np.cos(a), np.sin(b)).astype(np.float32)
    vegetation = 1 / (1 + np.exp(-1.5 * field[0]))
    water = np.clip(field[1] - 1.6, 0, 1) * (1 - vegetation)
    soil = 1 - vegetation - water
    base = sum(
        cover[..., None] * SPECTRA[name].astype(np.float32)
        for cover, name in ((vegetation, 'vegetation'), (soil, 'soil'), (water, 'water'))
    )  # (H, W, 4)
    # Texture: each visible band by its colour channel (BGR order of B2, B3, B4 = blue, green, red), NIR by luminance.
    detail = np.concatenate([texture[..., ::-1], luminance], axis=2)
    return (base * (0.4 + 1.2 * detail)).astype(np.float32)


def nodata_edge(rows, cols, width, fraction):
    """(H, W) bool, True on the slanted swath edge: ``fraction`` of the scene, widest at the top-left.

    Args:
        rows (np.ndarray): (H,) row indices.
        cols (np.ndarray): (W,) column indices.
        width (int): Scene width; the edge is ``2 * fraction * width`` wide at row 0 and closes at row ``width``.
        fraction (float): The nodata share of a square scene.
    """
    edge = 2 * fraction * width * (1 - rows[:, None] / (1.0 * width))
    return cols[None, :] < edge


def to_dn(refl):
    """Sentinel-2 L2A DN (uint16) from reflectance: DN = 10000 * reflectance + 1000, kept in [1000, 11000]."""
    return np.clip(np.round(refl * 10000 + 1000), 1000, 11000).astype(np.uint16)


def _check_target(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f'{path} exists; remove it or pass overwrite (--overwrite) to replace it.')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def write_scene(path, size=(512, 512), seed=0, nodata_fraction=0.1, overwrite=False):
    """Write a synthetic Sentinel-2-like scene (see the module docstring), strip by strip.

    Args:
        path (str): The ``.tif`` to write (tiled, deflate-compressed GeoTIFF).
        size (tuple[int, int]): (height, width) in pixels.
        seed (int): Scene seed.
        nodata_fraction (float): About the share of nodata (DN 0) on the swath edge; 0 for none.
        overwrite (bool): Replace an existing file; otherwise an existing ``path`` is an error.

    Returns:
        str: ``path``.
    """
    import rasterio
    from rasterio.transform import from_origin

    height, width = size
    _check_target(path, overwrite)
    profile = dict(
        driver='GTiff',
        height=height,
        width=width,
        count=len(BAND_NAMES),
        dtype='uint16',
        crs=CRS,
        transform=from_origin(*ORIGIN, PIXEL_SIZE, PIXEL_SIZE),
        nodata=NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress='deflate',
        predictor=2,
        BIGTIFF='IF_SAFER',
    )
    tmp = f'{path}.{os.getpid()}.tmp.tif'
    cols = np.arange(width)
    with rasterio.open(tmp, 'w', **profile) as dst:
        for top in range(0, height, _STRIP):
            rows = np.arange(top, min(top + _STRIP, height))
            dn = to_dn(reflectance(rows, cols, seed))
            if nodata_fraction:
                dn[nodata_edge(rows, cols, width, nodata_fraction)] = NODATA
            window = rasterio.windows.Window(0, top, width, len(rows))
            dst.write(dn.transpose(2, 0, 1), window=window)
        dst.descriptions = BAND_NAMES
    os.replace(tmp, path)
    return path


def write_lr_scene(hr_path, path, scale, offset=(0, 0), overwrite=False):
    """Write the LR scene of ``hr_path``: block means in reflectance, pixel size x ``scale``.

    An LR pixel is nodata when any HR pixel under it is. Reads the HR scene whole (small scenes).

    Args:
        hr_path (str): A scene from :func:`write_scene` (or any uint16 L2A GeoTIFF).
        path (str): The LR ``.tif`` to write.
        scale (int): Block size (the SR scale).
        offset (tuple[int, int]): (rows, cols) of LR pixels to leave out at the top and left, so the LR scene's
            origin differs from the HR scene's (pairing goes through the geotransforms). Default (0, 0).
        overwrite (bool): Replace an existing file.
    """
    import rasterio
    from rasterio.transform import Affine

    _check_target(path, overwrite)
    with rasterio.open(hr_path) as src:
        hr = src.read()
        profile = src.profile.copy()
        transform = src.transform
    bands, height, width = hr.shape
    h, w = height // scale, width // scale
    blocks = hr[:, : h * scale, : w * scale].reshape(bands, h, scale, w, scale)
    invalid = (blocks == NODATA).any(axis=(0, 2, 4))
    lr = np.round(blocks.astype(np.float64).mean(axis=(2, 4))).astype(np.uint16)
    lr[:, invalid] = NODATA
    lr = lr[:, offset[0] :, offset[1] :]
    lr_transform = transform @ Affine.translation(offset[1] * scale, offset[0] * scale) @ Affine.scale(scale)
    profile.update(height=lr.shape[1], width=lr.shape[2], transform=lr_transform, blockxsize=128, blockysize=128)
    tmp = f'{path}.{os.getpid()}.tmp.tif'
    with rasterio.open(tmp, 'w', **profile) as dst:
        dst.write(lr)
        dst.descriptions = BAND_NAMES
    os.replace(tmp, path)
    return path


def write_dataset(root, train_scenes=2, train_size=1024, val_size=512, seed=0, overwrite=False):
    """The layout the ``*_s2_rgbn`` option files read: ``<root>/train/scene_<i>.tif`` and ``<root>/val/scene_val.tif``.

    Args:
        root (str): Folder to write into (``datasets/s2_synthetic``).
        train_scenes (int): Training scenes. Default 2.
        train_size (int): Side of each training scene. Default 1024.
        val_size (int): Side of the validation scene. Default 512.
        seed (int): Seed of the first scene (the others follow). Default 0.
        overwrite (bool): Replace existing scenes.

    Returns:
        list[str]: The files written.
    """
    paths = [os.path.join(root, 'train', f'scene_{i}.tif') for i in range(train_scenes)]
    paths.append(os.path.join(root, 'val', 'scene_val.tif'))
    for path in paths:  # refuse before writing anything
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f'{path} exists; remove it or pass --overwrite to replace the scenes.')
    for i, path in enumerate(paths):
        side = val_size if i == train_scenes else train_size
        write_scene(path, (side, side), seed + i, overwrite=overwrite)
    return paths
