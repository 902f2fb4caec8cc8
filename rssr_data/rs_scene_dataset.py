"""Training and validation windows cut from whole GeoTIFF scenes by windowed reads."""

import os
from os import path as osp

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from rssr_utils.radiometry import Radiometry, RadiometryError, fill_invalid

from .degradations import bicubic_lr
from .rs_paired_dataset import refuse_unknown_keys

SCENE_KEYS = {
    'dataroot_gt',
    'dataroot_lq',
    'gt_size',
    'bands',
    'max_nodata',
    'lr',
    'noise',
    'use_hflip',
    'use_rot',
    'num_windows',
    'seed',
    'radiometry',
}
SCENE_EXTENSIONS = ('.tif', '.tiff')
LR_MODES = ('bicubic', 'sensor')
MAX_TRIES = 100  # window draws before a training sample gives up on a scene
# GDAL's block cache defaults to 5 % of the machine's memory; random windows would fill it with the scene.
GDAL_CACHE_BYTES = 64 * 2**20


def scene_files(root, key):
    """The GeoTIFFs of a ``dataroot``: one file, every ``.tif``/``.tiff`` directly in a folder (sorted), or a list."""
    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    files = []
    for item in roots:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item) if f.lower().endswith(SCENE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'{key}: no GeoTIFF (.tif, .tiff) in the folder {item}.')
            files += found
        elif osp.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f'{key}: {item} is neither a GeoTIFF nor a folder of them; check the path.')
    return files


class Scene:
    """What a scene's header says (read once; the pixels are read window by window).

    Args:
        path (str): The GeoTIFF.
        bands (list[int] | None): 1-based bands to read, in this order (all when None).
    """

    def __init__(self, path, bands=None):
        import rasterio

        self.path = path
        try:
            with rasterio.open(path) as src:
                self.height, self.width, self.count = src.height, src.width, src.count
                self.dtype, self.nodata = np.dtype(src.dtypes[0]), src.nodata
                self.transform, self.crs = src.transform, src.crs
        except rasterio.errors.RasterioError as error:
            raise ValueError(f'{path}: cannot be read as a raster ({error}); check the file.') from None
        self.bands = list(bands) if bands else list(range(1, self.count + 1))
        bad = [b for b in self.bands if not 1 <= b <= self.count]
        if bad:
            raise ValueError(f'{path}: bands {bad} do not exist; it has bands 1 to {self.count} (1-based, as GDAL).')


def pair_offset(gt, lq, scale):
    """HR pixel (row, col) of the LR scene's upper-left corner, checked through the two geotransforms.

    Both must share the CRS, be north-up, and the LR pixel must be ``scale`` HR pixels on each axis
    (refused by name otherwise); the LR grid must fall on HR pixel edges.
    """
    g, q = gt.transform, lq.transform
    if gt.crs != lq.crs:
        raise ValueError(f'dataroot_lq: {lq.path} is in {lq.crs} but {gt.path} is in {gt.crs}; reproject one first.')
    if g.b or g.d or q.b or q.d:
        raise ValueError(f'dataroot_lq: {gt.path} or {lq.path} is rotated; warp both to north-up grids first.')
    ratio = (q.a / g.a, q.e / g.e)
    if not np.allclose(ratio, scale, rtol=1e-6):
        raise ValueError(
            f'dataroot_lq: the pixel size of {lq.path} ({q.a:g} x {-q.e:g}) over that of {gt.path} '
            f'({g.a:g} x {-g.e:g}) is {ratio[0]:g} x {ratio[1]:g}, not the scale {scale}; fix scale or the LR scene.'
        )
    col, row = (q.c - g.c) / g.a, (q.f - g.f) / g.e
    if not (abs(col - round(col)) < 1e-3 and abs(row - round(row)) < 1e-3):
        raise ValueError(
            f'dataroot_lq: the LR grid of {lq.path} starts {row:.3f}, {col:.3f} HR pixels into {gt.path}, not on '
            'a pixel edge; resample it onto the HR grid.'
        )
    return round(row), round(col)


def band_radiometry(radiometry, scene):
    """The radiometry of the selected bands: per-band lists for the file's bands are picked and ordered."""
    per_band = max(len(radiometry.scale), len(radiometry.offset))
    if per_band == 1 or per_band == len(scene.bands) and per_band != scene.count:
        return radiometry
    if per_band != scene.count:
        raise ValueError(
            f'radiometry: {per_band} per-band values but {scene.path} has {scene.count} bands '
            f'and bands selects {len(scene.bands)}; give one value, or one per band.'
        )
    return radiometry.select(scene.bands)


def augment(arrays, rng, hflip, rot):
    """Flip and transpose (H, W, C) arrays alike, drawn from ``rng`` (BasicSR's ``augment``, seeded)."""
    flips = rng.random(3) < 0.5
    out = []
    for arr in arrays:
        if hflip and flips[0]:
            arr = arr[:, ::-1]
        if rot and flips[1]:
            arr = arr[::-1]
        if rot and flips[2]:
            arr = arr.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(arr))
    return out


def _tensor(arr):
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


@DATASET_REGISTRY.register()
class RSSceneDataset(data.Dataset):
    """Windows of whole GeoTIFF scenes (any band count and data type), LR made on the fly or read from LR scenes.

    A scene is never read whole: every sample is a windowed read (rasterio) of
    ``gt_size`` HR pixels, with GDAL's block cache kept at 64 MiB per process.
    Training draws random windows, seeded by (``seed``, sample index), so every
    worker, run and resume draws the same window and flips for a sample: an
    epoch is like a fixed set of ``num_windows`` tiles per scene (BasicSR's
    ``dataset_enlarge_ratio`` repeats it). A window whose nodata share exceeds
    ``max_nodata`` is drawn again (up to 100 times, then an error naming the
    scene). Validation reads a fixed grid of windows side by side, nodata
    included (the model masks its metrics and skips empty windows).

    Stored values become model values through the radiometry
    (:class:`rssr_utils.radiometry.Radiometry`), and nodata pixels (any band
    equal to the radiometry's or the file's nodata) are filled with their
    nearest valid pixel (:func:`rssr_utils.radiometry.fill_invalid`) before the
    LR is made, so the network never sees nodata.

    Each sample: ``lq`` (C, h, w) and ``gt`` (C, H, W) float32 model values,
    ``mask`` (1, H, W) float32 (1 = valid pixel of gt), ``lq_path`` and
    ``gt_path`` (the scene files) and ``window`` (HR row, column of the window).

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_gt (str | list[str]): A GeoTIFF, a folder of them, or a list of files/folders. Required.
            dataroot_lq (str | list[str] | None): Real LR scenes, one per HR scene in the same order
                (folders: sorted names). Windows are matched through the geotransforms: same CRS, LR pixel
                size = scale x HR pixel size (refused otherwise). Default: None (LR made from HR).
            gt_size (int): HR window side, for training and validation; a multiple of scale. Required.
            scale (int): Upscale factor (BasicSR sets it from the top-level ``scale``). Required.
            phase (str): 'train' draws random windows; other phases read the grid.
            bands (list[int] | None): 1-based bands to read, in this order (as GDAL). Default: all.
            max_nodata (float): Largest nodata share of a training window, 0 to 1. Default: 0.
            lr (str): LR made on the fly: 'bicubic' (MATLAB bicubic in model values) or 'sensor' (Gaussian
                blur from the radiometry's MTF at Nyquist, decimation). Default: 'bicubic'.
            noise (float): Standard deviation of Gaussian noise added to the made LR, in model units (e.g.
                reflectance). Default: 0.
            use_hflip (bool): Random horizontal flips for training. Default: False.
            use_rot (bool): Random vertical flips and transposes for training. Default: False.
            num_windows (int | None): Training windows per scene per epoch (default 100); validation: at most
                this many grid windows per scene, spread evenly (default: all).
            seed (int): Seed of the window draws, flips and noise. Default: 0.
            radiometry (str | dict | None): Stored -> model values (a profile name or explicit numbers, see
                rssr_utils.radiometry). Default: the option file's top-level ``radiometry``; without one,
                the ``uint8`` or ``uint16`` profile by the file's type.
            Unknown keys are refused, so that typos do not pass silently.
    """

    def __init__(self, opt):
        super().__init__()
        refuse_unknown_keys(opt, SCENE_KEYS, 'RSSceneDataset')
        self.opt = opt
        self.scale = opt['scale']
        self.size = opt['gt_size']
        self.train = opt['phase'] == 'train'
        self.max_nodata = opt.get('max_nodata', 0)
        self.lr_mode = opt.get('lr', 'bicubic')
        self.noise = opt.get('noise', 0)
        self.seed = opt.get('seed', 0)
        if self.size % self.scale:
            raise ValueError(f'gt_size {self.size} is not a multiple of scale {self.scale}; the LR would not align.')
        if self.lr_mode not in LR_MODES:
            raise ValueError(f'lr: {self.lr_mode!r} is not one of {list(LR_MODES)}.')
        if not 0 <= self.max_nodata <= 1:
            raise ValueError(f'max_nodata: {self.max_nodata} is a share of the window, from 0 to 1.')
        self.scenes = [Scene(p, opt.get('bands')) for p in scene_files(opt['dataroot_gt'], 'dataroot_gt')]
        self.lq_scenes, self.offsets = None, None
        if opt.get('dataroot_lq'):
            self.lq_scenes = [Scene(p, opt.get('bands')) for p in scene_files(opt['dataroot_lq'], 'dataroot_lq')]
            if len(self.lq_scenes) != len(self.scenes):
                raise ValueError(
                    f'dataroot_lq holds {len(self.lq_scenes)} scene(s) but dataroot_gt {len(self.scenes)}; '
                    'give one LR scene per HR scene, in the same order.'
                )
            self.offsets = [pair_offset(g, q, self.scale) for g, q in zip(self.scenes, self.lq_scenes)]
        self.radiometries = [self._radiometry(s, opt.get('radiometry')) for s in self.scenes]
        self.mtf = (
            [self._mtf(s, r, opt.get('radiometry')) for s, r in zip(self.scenes, self.radiometries)]
            if self.lr_mode == 'sensor'
            else None
        )
        self.ranges = [self._ranges(i) for i in range(len(self.scenes))]
        self.num_windows = opt.get('num_windows')
        self.grid = None if self.train else self._grid()
        self._handles, self._pid = {}, None

    @staticmethod
    def _mtf(scene, radiometry, spec):
        """MTF at Nyquist of each selected band: the file's bands' (a sensor profile's defaults) picked by ``bands``,
        else those the selection names itself (``band_names`` given for the selected bands)."""
        try:
            per_file = Radiometry.resolve(spec, 'radiometry').band_mtf(scene.count)
        except RadiometryError:
            return radiometry.band_mtf(len(scene.bands))
        return [per_file[b - 1] for b in scene.bands]

    @staticmethod
    def _radiometry(scene, spec):
        if spec is None:
            if scene.dtype not in (np.uint8, np.uint16):
                raise ValueError(
                    f'{scene.path}: {scene.dtype} data needs a radiometry (top-level radiometry: a profile name or '
                    '{scale, offset, valid_range, nodata}).'
                )
            spec = scene.dtype.name
        return band_radiometry(Radiometry.resolve(spec, 'radiometry'), scene)

    def _ranges(self, i):
        """(row low, row high, col low, col high): the window starts allowed in scene ``i`` (LR pixels if paired)."""
        gt = self.scenes[i]
        if self.offsets is None:
            high_r, high_c = gt.height - self.size, gt.width - self.size
            if min(high_r, high_c) < 0:
                raise ValueError(f'{gt.path}: {gt.height}x{gt.width} is smaller than gt_size {self.size}.')
            return 0, high_r, 0, high_c
        lq, (r0, c0) = self.lq_scenes[i], self.offsets[i]
        lr_size, s = self.size // self.scale, self.scale
        # LR start t: inside the LR scene, and its HR window r0 + t*s .. + size inside the HR scene.
        low_r, low_c = max(0, -(r0 // s)), max(0, -(c0 // s))  # ceil(-r0 / s)
        high_r = min(lq.height - lr_size, (gt.height - self.size - r0) // s)
        high_c = min(lq.width - lr_size, (gt.width - self.size - c0) // s)
        if high_r < low_r or high_c < low_c:
            raise ValueError(
                f'dataroot_lq: {lq.path} and {gt.path} do not overlap by a {self.size}-pixel HR window; '
                'check that they cover the same area.'
            )
        return low_r, high_r, low_c, high_c

    def _grid(self):
        step = self.size // self.scale if self.offsets else self.size
        grid = []
        for i, (low_r, high_r, low_c, high_c) in enumerate(self.ranges):
            cells = [(i, r, c) for r in range(low_r, high_r + 1, step) for c in range(low_c, high_c + 1, step)]
            if self.num_windows and len(cells) > self.num_windows:
                cells = [cells[k] for k in np.linspace(0, len(cells) - 1, self.num_windows).round().astype(int)]
            grid += cells
        return grid

    def __len__(self):
        return len(self.scenes) * (self.num_windows or 100) if self.train else len(self.grid)

    def _read(self, scene, top, left, size):
        """Stored values (size, size, C) of a window, in the scene's type."""
        import rasterio
        from rasterio.windows import Window

        if self._pid != os.getpid():  # handles do not survive fork: each worker opens its own
            self._handles, self._pid = {}, os.getpid()
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            if scene.path not in self._handles:
                self._handles[scene.path] = rasterio.open(scene.path)
            stored = self._handles[scene.path].read(scene.bands, window=Window(left, top, size, size))
        return stored.transpose(1, 2, 0)

    def _model(self, scene, radiometry, stored):
        """(model values with nodata filled, valid mask) of a stored window."""
        mask = radiometry.valid_mask(stored)
        if scene.nodata is not None and scene.nodata != radiometry.nodata:
            mask &= ~np.any(stored == scene.nodata, axis=2)
        return fill_invalid(radiometry.to_model(stored), mask), mask

    def _window(self, i, r, c):
        """(gt, gt mask, lq or None, lq mask or None, HR row, HR col) of grid/draw position (r, c) in scene i."""
        scene, radiometry = self.scenes[i], self.radiometries[i]
        if self.offsets is None:
            gt, mask = self._model(scene, radiometry, self._read(scene, r, c, self.size))
            return gt, mask, None, None, r, c
        (r0, c0), s = self.offsets[i], self.scale
        top, left = r0 + r * s, c0 + c * s
        gt, mask = self._model(scene, radiometry, self._read(scene, top, left, self.size))
        lq_scene = self.lq_scenes[i]
        lq, lq_mask = self._model(lq_scene, radiometry, self._read(lq_scene, r, c, self.size // s))
        return gt, mask, lq, lq_mask, top, left

    def _make_lr(self, i, gt, rng):
        radiometry = self.radiometries[i]
        if self.lr_mode == 'sensor':
            from .sensor_degradations import sensor_lr

            seed = int(rng.integers(2**31))
            return np.asarray(sensor_lr(gt, self.scale, self.mtf[i], self.noise, seed), dtype=np.float32)
        lo, hi = radiometry.model_range(gt.shape[2])
        lq = bicubic_lr(gt, self.scale, value_range=(lo, hi))
        if self.noise:
            lq = (lq + rng.normal(0, self.noise, lq.shape)).astype(np.float32)
        return lq

    def _draw(self, index, rng):
        i = index % len(self.scenes)
        low_r, high_r, low_c, high_c = self.ranges[i]
        for _ in range(MAX_TRIES):
            r, c = int(rng.integers(low_r, high_r + 1)), int(rng.integers(low_c, high_c + 1))
            found = self._window(i, r, c)
            bad = max(1 - found[1].mean(), 0 if found[3] is None else 1 - found[3].mean())
            if bad <= self.max_nodata:
                return i, found
        raise ValueError(
            f'{self.scenes[i].path}: no {self.size}-pixel window with at most {self.max_nodata:.0%} nodata in '
            f'{MAX_TRIES} random tries; raise max_nodata, lower gt_size, or remove the scene.'
        )

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        if self.train:
            i, (gt, mask, lq, _, top, left) = self._draw(index, rng)
        else:
            i, r, c = self.grid[index]
            gt, mask, lq, _, top, left = self._window(i, r, c)
        if lq is None:
            lq = self._make_lr(i, gt, rng)
        mask = mask[..., None].astype(np.float32)
        if self.train:
            gt, lq, mask = augment(
                [gt, lq, mask], rng, self.opt.get('use_hflip', False), self.opt.get('use_rot', False)
            )
        lq_path = self.scenes[i].path if self.lq_scenes is None else self.lq_scenes[i].path
        return {
            'lq': _tensor(lq),
            'gt': _tensor(gt),
            'mask': _tensor(mask),
            'lq_path': lq_path,
            'gt_path': self.scenes[i].path,
            'window': torch.tensor([top, left]),
        }
