"""N-band scenes with a declared radiometry: windowed reads in, stored values of the input's type out.

``rssr-infer --radiometry sentinel2_l2a --bands 1 2 3 4`` (or a radiometry
from ``-opt``'s top-level ``radiometry:``, the ``model.json`` sidecar of
``--weights`` or the ONNX metadata) takes this path instead of ``--stretch``:

* the scene is read a strip of tile rows at a time (rasterio windows; PNG/JPEG
  are decoded whole), so only ``tile`` LR rows of it are ever held in float32;
* stored values become model values with :meth:`Radiometry.to_model`; pixels
  that carry nothing (the radiometry's ``nodata``, the file's nodata value,
  NaN) are filled with their nearest valid pixel in the strip
  (:func:`fill_invalid`) before the network sees them;
* outputs go back with :meth:`Radiometry.from_model` (rounded, clipped to the
  valid range) in the input's data type; the LR validity mask, upsampled by
  nearest neighbour, puts nodata back where the input had none;
* GeoTIFFs keep CRS, tags and band count, the pixel size is divided by the
  scale, and the radiometry is recorded in the ``RSSR_RADIOMETRY`` tag.
"""

import json
from os import path as osp

import numpy as np

from rssr_data.rs_scene_dataset import band_radiometry
from rssr_utils.image_io import MAX_PIXELS, ImageError, check_size
from rssr_utils.radiometry import Radiometry, RadiometryError, fill_invalid

from .raster import TIFF_EXTENSIONS, _ArrayWriter, _rasterio, _TiffWriter, atomic_writer, read_scene

ROWS_PER_CONVERSION = 64  # output rows converted to stored values at once: bounds the float64 temporary


class SceneSource:
    """Stored values of the selected bands of a scene, read by rows.

    Args:
        path (str): GeoTIFF/TIFF (rasterio, windowed) or PNG/JPEG (decoded whole, RGB).
        bands (list[int] | None): 1-based bands; None: every band (RGB for PNG/JPEG).
        max_pixels (int): Largest width x height accepted, checked on the header.
    """

    def __init__(self, path, bands=None, max_pixels=MAX_PIXELS):
        self.path, self.file, self.array = path, None, None
        rasterio = _rasterio() if path.lower().endswith(TIFF_EXTENSIONS) else None
        if rasterio is None:
            if bands and list(bands) != [1, 2, 3]:
                raise ImageError(f'{path}: --bands {list(bands)}: PNG/JPEG/BMP scenes have RGB bands only (1 2 3).')
            self.array, meta = read_scene(path, (1, 2, 3), max_pixels)
            self.bands, (_, self.height, self.width) = [1, 2, 3], self.array.shape
            self.meta, self.count = {**meta, 'count': 3}, 3
            return
        if osp.isfile(path) and osp.getsize(path) == 0:
            raise ImageError(f'{path}: is empty (0 bytes); re-export or re-download it, or remove it.')
        try:
            self.file = rasterio.open(path)
        except rasterio.errors.RasterioError as error:
            raise ImageError(f'{path}: cannot be read ({error}).') from error
        self.count = count = self.file.count
        self.bands = list(bands or range(1, count + 1))
        if min(self.bands) < 1 or max(self.bands) > count:
            self.close()
            raise ImageError(f'{path}: has {count} bands, --bands asks for {self.bands}.')
        dtype = np.dtype(self.file.dtypes[self.bands[0] - 1])
        check_size(path, self.file.width, self.file.height, max_pixels, len(self.bands) * dtype.itemsize)
        self.height, self.width = self.file.height, self.file.width
        self.meta = {
            'profile': self.file.profile.copy(),
            'tags': self.file.tags(),
            'nodata': self.file.nodata,
            'dtype': dtype,
            'count': len(self.bands),
            'descriptions': [self.file.descriptions[b - 1] for b in self.bands],
        }

    def read(self, top, bottom):
        """(C, bottom - top, W) stored values of rows [top, bottom)."""
        if self.array is not None:
            return self.array[:, top:bottom]
        window = _rasterio().windows.Window(0, top, self.width, bottom - top)
        return self.file.read(self.bands, window=window)

    def close(self):
        if self.file is not None:
            self.file.close()


class ModelStrips:
    """A (C, H, W) float32 scene in model values for :class:`~rssr_utils.tiling.TiledSR`, made a strip at a time.

    TiledSR cuts the tiles of one tile row with ``scene[:, y:y + th, x:x + tw]``; the first cut of a row reads
    rows [y, y + th) of ``source``, converts them and fills their invalid pixels; the rest of the row are views.

    Args:
        source (SceneSource): The stored values.
        radiometry (Radiometry): Of the selected bands.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, source, radiometry):
        self.source, self.radiometry = source, radiometry
        self.shape = (len(source.bands), source.height, source.width)
        self.rows, self.strip = None, None

    def valid(self, stored):
        """(h, w) bool, True where a (C, h, w) block of stored values carries data."""
        mask = self.radiometry.valid_mask(stored.transpose(1, 2, 0))
        nodata = self.source.meta.get('nodata')
        if nodata is not None and not np.isnan(nodata):
            mask &= ~np.any(stored == nodata, axis=0)
        if np.issubdtype(stored.dtype, np.floating):
            mask &= np.all(np.isfinite(stored), axis=0)
        return mask

    def __getitem__(self, key):
        _, ys, xs = key
        if self.rows != (ys.start, ys.stop):
            stored = self.source.read(ys.start, ys.stop)
            model = self.radiometry.to_model(stored.transpose(1, 2, 0))
            self.strip = fill_invalid(model, self.valid(stored)).transpose(2, 0, 1)
            self.rows = (ys.start, ys.stop)
        return self.strip[:, :, xs]


def check_stored_type(radiometry, dtype, path):
    """Refuse a scene whose integer type cannot hold the radiometry's valid range (outputs keep the input type)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = radiometry.valid_range
        if lo < info.min or hi > info.max:
            raise ImageError(
                f"{path}: is {dtype}, which cannot hold the radiometry's valid range {list(radiometry.valid_range)} "
                f'({radiometry.name or "explicit"}); pass the --radiometry of this sensor (e.g. uint8 for 8-bit).'
            )


def super_resolve_scene(engine, src, dst, radiometry, bands=None, progress=None, max_pixels=MAX_PIXELS):
    """Super-resolve an N-band scene with a radiometry into ``dst`` through a temporary file renamed at the end.

    Args:
        engine (TiledSR): The tiled network.
        src, dst (str): Input scene and output file.
        radiometry (Radiometry): Declared for the file's bands (or the selected ones: see
            :func:`rssr_data.rs_scene_dataset.band_radiometry`, which the training windows use too).
        bands (list[int] | None): 1-based bands to super-resolve; None: all.
        progress (callable | None): Called with the number of tiles after each forward.
        max_pixels (int): Largest LR width x height accepted.

    Returns:
        dict: 'tiles', 'bands' and 'radiometry' (the one applied, as a dict).
    """
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ValueError(f'{dst}: output would overwrite its input; choose another output folder.')
    source = SceneSource(src, bands, max_pixels)
    try:
        meta, s = source.meta, engine.scale
        radiometry = band_radiometry(radiometry, source)
        check_stored_type(radiometry, meta['dtype'], src)
        nodata = radiometry.nodata if radiometry.nodata is not None else meta['nodata']
        if nodata is not None and np.issubdtype(meta['dtype'], np.integer) and not np.isnan(nodata):
            nodata = int(nodata)
        scene = ModelStrips(source, radiometry)
        tiff = dst.lower().endswith(TIFF_EXTENSIONS) and _rasterio() is not None
        if not tiff and meta['count'] != 3:
            raise ValueError(f'{dst}: {meta["count"]}-band outputs are written as GeoTIFF; pass --ext .tif.')
        if tiff and meta.get('profile') is not None:
            meta = {**meta, 'profile': {**meta['profile'], 'nodata': nodata}}
        writer_class = _TiffWriter if tiff else _ArrayWriter
        with atomic_writer(writer_class, dst, meta, source.height * s, source.width * s, s) as writer:
            if tiff:
                writer.file.update_tags(RSSR_RADIOMETRY=json.dumps(radiometry.to_dict()))
                for i, text in enumerate(meta.get('descriptions') or [], start=1):
                    if text:
                        writer.file.set_band_description(i, text)
            tiles = engine.tiles_done
            for top, rows in engine.rows(scene, progress=progress, clip=False):
                mask = scene.valid(source.read(top // s, (top + rows.shape[1]) // s)).repeat(s, 0).repeat(s, 1)
                writer.write(top, to_stored(rows, mask, radiometry, meta['dtype'], nodata))
    finally:
        source.close()
    return {'tiles': engine.tiles_done - tiles, 'bands': source.bands, 'radiometry': radiometry.to_dict()}


def to_stored(rows, mask, radiometry, dtype, nodata):
    """(C, n, W) model values -> (C, n, W) stored values of ``dtype``; ``mask`` (n, W) False pixels get ``nodata``.

    Converted ``ROWS_PER_CONVERSION`` rows at a time (the conversion works in float64).
    """
    out = np.empty(rows.shape, dtype)
    for i in range(0, rows.shape[1], ROWS_PER_CONVERSION):
        block = slice(i, i + ROWS_PER_CONVERSION)
        out[:, block] = radiometry.from_model(rows[:, block].transpose(1, 2, 0)).transpose(2, 0, 1)
    if not mask.all():
        out[:, ~mask] = np.nan if nodata is None else nodata
    return out


def parse_radiometry(text):
    """``--radiometry``: a profile name, or a JSON mapping of explicit numbers (as in an option file)."""
    if text.lstrip().startswith('{'):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise RadiometryError(f'--radiometry: not valid JSON ({error}).') from None
    return text


def declared_radiometry(args, net):
    """The radiometry and bands the arguments and the model declare: ``(Radiometry | None, bands | None)``.

    ``--radiometry`` wins, then ``-opt``'s top-level ``radiometry:``, then the sidecar of ``--weights``
    (``model.json``, :func:`~rssr_utils.weights.sidecar_bands`), then the ONNX metadata; ``--bands`` wins
    over the model's ``bands``.
    """
    from rssr_utils.weights import model_options, sidecar_bands

    radiometry, bands = None, None
    if args.onnx:
        declared = getattr(net, 'metadata', {})
        bands = declared.get('bands')
        if declared.get('radiometry') is not None:
            radiometry = Radiometry.resolve(declared['radiometry'], f'{args.onnx}: metadata radiometry')
    elif args.opt:
        options = model_options(args.opt)
        bands = options.get('bands')
        if options.get('radiometry') is not None:
            radiometry = Radiometry.resolve(options['radiometry'], f'{args.opt}: radiometry')
    elif (args.weights or '').endswith('.safetensors'):
        bands, radiometry = sidecar_bands(args.weights)
    if args.radiometry is not None:
        radiometry = Radiometry.resolve(parse_radiometry(args.radiometry), '--radiometry')
    return radiometry, list(args.bands) if args.bands else bands
