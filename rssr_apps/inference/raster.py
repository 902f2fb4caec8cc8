"""Scene files for inference: reading RGB bands, value mapping, and writers that never hold a half-written output.

Pixel values (``--stretch``): ``dtype`` divides by the type's maximum (255 for
8-bit, 65535 for 16-bit: exact and independent of the scene); ``minmax`` maps
the scene's smallest and largest RGB value (nodata excluded) to 0 and 1, the
same map for the three bands so colours keep their ratios (``auto``: ``dtype``
for 8/16-bit, ``minmax`` for other integer and float rasters). Results are
mapped back, clipped to that range, rounded for integer types and written in
the input's data type. GeoTIFFs (rasterio) keep CRS, tags and nodata (nodata
pixels stay nodata), the geotransform's pixel size is divided by the scale, and
the output is tiled, DEFLATE-compressed and written strip by strip, so nothing
of the output's size is held; PNG/JPEG encoders need the whole output array.
RGB comes from ``bands`` (1-based, default 1 2 3) of multi-band rasters.

Files are read by :mod:`rssr_utils.image_io` (PNG, JPEG, BMP, TIFF without
rasterio) or rasterio, and refused, named, when they are empty, corrupt, or
above ``max_pixels`` by their header (rasterio's metadata for GeoTIFFs): the
check comes before any pixel is read, so a sparse 100000x100000 GeoTIFF costs
nothing. Non-finite pixels of float rasters (NaN, inf) are nodata whether or
not the file declares a nodata value.
"""

import contextlib
import os
import warnings

import numpy as np

from rssr_utils.image_io import MAX_PIXELS, ImageError, check_size, decode_raw, encode_image, read_bytes, text_name

TIFF_EXTENSIONS = ('.tif', '.tiff')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp') + TIFF_EXTENSIONS


def _rasterio():
    try:
        import rasterio

        return rasterio
    except ImportError:
        return None


def read_scene(path, bands=(1, 2, 3), max_pixels=MAX_PIXELS):
    """Read the RGB bands of a scene.

    Args:
        path (str): Image or (Geo)TIFF file.
        bands (tuple[int]): 1-based RGB band numbers (rasterio files).
        max_pixels (int): Largest width x height accepted, checked before reading pixels.

    Returns:
        (np.ndarray, dict): (3, H, W) array in the file's data type, and metadata: 'dtype',
        'nodata' (or None), and for files read by rasterio 'profile' and 'tags'.
    """
    rasterio = _rasterio() if path.lower().endswith(TIFF_EXTENSIONS) else None
    if rasterio is not None:
        text_name(path, '')  # GDAL takes UTF-8 paths only: other bytes are refused by name
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise ImageError(f'{path}: is empty (0 bytes); re-export or re-download it, or remove it.')
        try:
            with rasterio.open(path) as src:
                if src.count < 3 and tuple(bands) == (1, 2, 3):
                    raise ImageError(
                        f'{path}: has {src.count} band(s); super-resolution needs RGB. Pass --bands '
                        'with three band numbers, or convert the image.'
                    )
                if max(bands) > src.count or min(bands) < 1:
                    raise ImageError(f'{path}: has {src.count} bands, --bands asks for {list(bands)}.')
                check_size(path, src.width, src.height, max_pixels, 3 * np.dtype(src.dtypes[0]).itemsize)
                data = src.read(list(bands))
                meta = {'profile': src.profile.copy(), 'tags': src.tags(), 'nodata': src.nodata}
        except rasterio.errors.RasterioError as error:
            raise ImageError(f'{path}: cannot be read ({error}).') from error
    else:
        try:
            raw = decode_raw(read_bytes(path), path, max_pixels)
        except ImageError as error:
            hint = ' (GeoTIFF and multi-band files need the geo extra: pip install ".[geo]")'
            raise ImageError(f'{error}{hint if path.lower().endswith(TIFF_EXTENSIONS) else ""}') from error
        if raw.ndim == 2 or raw.shape[2] not in (3, 4):
            raise ImageError(
                f'{path}: has {1 if raw.ndim == 2 else raw.shape[2]} band(s); only RGB(A) images are '
                'supported here (use a GeoTIFF with --bands for multi-band rasters).'
            )
        data = raw[..., 2::-1].transpose(2, 0, 1)  # BGR(A) -> RGB, CHW; alpha dropped
        meta = {'nodata': None}
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ImageError(f'{path}: pixel type {data.dtype} is not supported (integer or float rasters are).')
    meta['dtype'] = data.dtype
    return np.ascontiguousarray(data), meta


def nodata_mask(lr, nodata):
    """Elementwise mask of the pixels that are no data: the declared value, and NaN/inf in float rasters.

    Args:
        lr (np.ndarray): (C, h, W) scene rows.
        nodata (float | None): The file's nodata value.

    Returns:
        np.ndarray | None: Boolean (C, h, W), or None when nothing can be missing.
    """
    mask = None
    if nodata is not None and not np.isnan(nodata):
        mask = lr == nodata
    if np.issubdtype(lr.dtype, np.floating):
        holes = ~np.isfinite(lr)
        mask = holes if mask is None else mask | holes
    return mask


def value_range(data, meta, stretch='auto'):
    """(offset, span): ``(data - offset) / span`` maps the scene to [0, 1] (see the module docstring)."""
    dtype = meta['dtype']
    if stretch == 'auto':
        stretch = 'dtype' if dtype in (np.uint8, np.uint16) else 'minmax'
    if stretch == 'dtype':
        if not np.issubdtype(dtype, np.unsignedinteger):
            raise ValueError(f'--stretch dtype needs unsigned integers, the scene is {dtype}: use --stretch minmax.')
        return 0.0, float(np.iinfo(dtype).max)
    mask = nodata_mask(data, meta['nodata'])
    valid = data if mask is None else data[~mask]
    if valid.size == 0:
        return 0.0, 1.0
    low, high = float(valid.min()), float(valid.max())
    return low, (high - low) or 1.0


def from_unit(rows, offset, span, dtype):
    """Map float32 network output (overwritten, to save a copy) back to the scene's values and data type."""
    np.clip(rows, 0, 1, out=rows)  # the stretched range
    rows *= span
    rows += offset
    if np.issubdtype(dtype, np.integer):
        np.round(rows, out=rows)
    return rows.astype(dtype, copy=False)


class _TiffWriter:
    """Tiled, DEFLATE-compressed (Geo)TIFF written strip by strip with rasterio.

    Rows are written in whole rows of 256x256 blocks (the rest waits for the next
    strip): GDAL keeps partly written blocks in its cache, up to 5% of the RAM.
    """

    block = 256

    def __init__(self, path, meta, height, width, scale):
        rasterio = _rasterio()
        profile = dict(meta.get('profile') or {})
        if profile.get('transform', rasterio.Affine.identity()) != rasterio.Affine.identity():
            profile['transform'] = profile['transform'] @ rasterio.Affine.scale(1 / scale)  # pixel size / scale
        else:  # no georeferencing: write none rather than a made-up pixel size
            profile.pop('transform', None)
        for key in ('photometric', 'blockxsize', 'blockysize', 'interleave'):
            profile.pop(key, None)
        profile.update(
            driver='GTiff',
            width=width,
            height=height,
            count=meta.get('count', 3),
            dtype=meta['dtype'],
            tiled=True,
            blockxsize=self.block,
            blockysize=self.block,
            compress='deflate',
            bigtiff='if_safer',
        )
        text_name(path, '')  # GDAL takes UTF-8 paths only: other bytes are refused by name
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
            self.file = rasterio.open(path, 'w', **profile)
        self.file.update_tags(**meta.get('tags', {}))
        self.window = rasterio.windows.Window
        self.height, self.pending = height, None

    def write(self, top, rows):
        if self.pending is not None:
            top, rows = self.pending_top, np.concatenate([self.pending, rows], axis=1)
        end = top + rows.shape[1]
        cut = rows.shape[1] if end == self.height else end // self.block * self.block - top
        if cut:
            self.file.write(rows[:, :cut], window=self.window(0, top, rows.shape[2], cut))
        self.pending, self.pending_top = (rows[:, cut:].copy(), top + cut) if cut < rows.shape[1] else (None, None)

    def close(self):
        self.file.close()

    abort = close


class _ArrayWriter:
    """PNG/JPEG/BMP/TIFF encoded by OpenCV in memory (any byte in the name works): holds the whole output array."""

    def __init__(self, path, meta, height, width, scale):
        self.path, self.array = path, np.empty((height, width, 3), meta['dtype'])

    def write(self, top, rows):
        self.array[top : top + rows.shape[1]] = rows.transpose(1, 2, 0)[..., ::-1]  # RGB -> BGR

    def close(self):
        try:
            content = encode_image(self.array, os.path.splitext(self.path)[1], self.path)
        except ImageError as error:
            raise ImageError(f'{error} Try --ext .tif.') from error
        with open(self.path, 'wb') as f:
            f.write(content)

    def abort(self):
        self.array = None


@contextlib.contextmanager
def atomic_writer(writer_class, dst, meta, height, width, scale):
    """A ``writer_class`` on a temporary name beside ``dst``, renamed to ``dst`` when the block completes.

    When the block raises, the writer is aborted and the temporary file removed: ``dst`` is either complete or
    untouched.
    """
    tmp = f'{dst}.part{os.path.splitext(dst)[1]}'
    writer = None
    try:
        writer = writer_class(tmp, meta, height, width, scale)
        yield writer
        writer.close()
        writer = None
        os.replace(tmp, dst)
    finally:
        if writer is not None:
            writer.abort()
        if os.path.exists(tmp):
            os.remove(tmp)
