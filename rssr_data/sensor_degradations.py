"""Sensor-like LR: per-band Gaussian PSF from the sensor's MTF at Nyquist, decimation, optional noise.

Pipeline per band (model values, e.g. reflectance)::

    HR --(Gaussian PSF, sigma from the band's MTF)--> point sampling at the LR pixel centres --> + N(0, noise_std)

* **Which MTF.** A sensor's declared MTF at Nyquist (e.g. Sentinel-2 B4: 0.24,
  :data:`rssr_utils.radiometry.SENTINEL2_MTF`) is the modulation the whole
  system (optics, detector footprint, motion) leaves of a grating at the LR
  Nyquist frequency ``f = 0.5 / scale`` cycles per HR pixel. The Gaussian PSF
  stands for that whole system: for a continuous Gaussian,
  ``MTF(f) = exp(-2 pi^2 sigma^2 f^2)``, so
  ``sigma = sqrt(-2 ln(MTF)) / (2 pi f)`` (HR pixels).
* **Point sampling, not area averaging.** Each LR pixel is the blurred HR
  sampled at the centre of its ``scale x scale`` block (the grid MATLAB's
  ``imresize`` and :func:`~rssr_data.degradations.bicubic_lr` use, so this LR
  is not shifted against the bicubic one; for an even scale the centre lies
  between HR pixels and the PSF is sampled at half-pixel offsets). Area
  averaging would apply a detector footprint a second time (a box whose MTF
  at Nyquist is ``2 / pi = 0.64``) on top of a PSF that already includes it,
  and could not reach a declared MTF above 0.64. Sampling a sine at its own
  frequency leaves its amplitude unchanged, so the LR's MTF at Nyquist is the
  PSF's.
* **Exact on the pixel grid.** The PSF is used as discrete taps (normalised
  to sum 1, reaching 4 sigma past the block); their response at ``f`` is not
  exactly the continuous formula when sigma is below about one HR pixel
  (scale 2 with a high MTF), so sigma is solved numerically
  (:func:`psf_taps`) for the taps' own response to equal the declared MTF.
  ``tests/test_sensor_degradation.py`` measures it on sine gratings.
* **Noise** is Gaussian, per band, in model units (reflectance for
  ``sentinel2_l2a``), drawn from ``numpy.random.default_rng(seed)``; pass
  ``seed = image_seed(run_seed, key)`` (:mod:`rssr_data.real_degradations`)
  so an image's LR depends on the run's seed and the image only.
"""

import json
import math
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import brentq

from rssr_utils.radiometry import Radiometry, fill_invalid

from .degradation_draws import image_seed
from .degradations import mod_crop

_REACH = 4.0  # taps reach this many sigmas past the block centre (the rest of a Gaussian is < 4e-5)


def resolve_mtf(mtf, num_bands, where='mtf'):
    """Per-band MTF at Nyquist: a list of ``num_bands`` floats in (0, 1).

    Args:
        mtf (float | list[float] | str | dict | Radiometry): One value for every band, one per band, or a
            radiometry (profile name such as ``'sentinel2_l2a'``, explicit dict, :class:`Radiometry`) whose
            :meth:`~rssr_utils.radiometry.Radiometry.band_mtf` gives them.
        num_bands (int): Number of bands of the image.
        where (str): Named in errors.
    """
    if isinstance(mtf, (str, dict, Radiometry)):
        values = Radiometry.resolve(mtf, where).band_mtf(num_bands)
    else:
        values = np.atleast_1d(np.asarray(mtf, dtype=np.float64)).tolist()
        if len(values) == 1:
            values = values * num_bands
    if len(values) != num_bands:
        raise ValueError(f'{where}: {len(values)} MTF values for {num_bands} bands; give one or one per band.')
    if not all(0 < m < 1 for m in values):
        raise ValueError(f'{where}: MTF values {values} must lie strictly between 0 and 1.')
    return [float(m) for m in values]


def gaussian_sigma(mtf, scale):
    """Sigma (HR pixels) of the continuous Gaussian whose MTF at the LR Nyquist ``0.5 / scale`` equals ``mtf``."""
    return math.sqrt(-2.0 * math.log(mtf)) / (2.0 * math.pi * 0.5 / scale)


def _taps(sigma, scale, half):
    """Normalised Gaussian taps at offsets ``j - (scale - 1) / 2``, j in [-half, scale - 1 + half] (float64)."""
    offsets = np.arange(-half, scale + half, dtype=np.float64) - (scale - 1) / 2
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum(), offsets


def psf_taps(mtf, scale, half=None):
    """1-D PSF taps of one band and their sigma: the taps' response at ``0.5 / scale`` equals ``mtf``.

    Args:
        mtf (float): MTF at Nyquist, in (0, 1).
        scale (int): Downscaling factor.
        half (int | None): Taps past each side of the ``scale``-pixel block; default reaches 4 sigma.

    Returns:
        tuple[np.ndarray, float]: taps (``scale + 2 * half``,) float64 summing to 1, and sigma (HR pixels).
    """
    freq = 0.5 / scale
    guess = gaussian_sigma(mtf, scale)
    half = int(math.ceil(_REACH * guess)) + 1 if half is None else half

    def response(sigma):  # the taps are symmetric about the block centre: their DTFT is real
        taps, offsets = _taps(sigma, scale, half)
        return float(np.sum(taps * np.cos(2 * np.pi * freq * offsets))) - mtf

    # As sigma -> 0 the taps shrink to the block centre: 1 for an odd scale, the two pixels around it
    # (response cos(pi / (2 scale)): 0.71 at scale 2) for an even one. A sharper MTF cannot be made.
    sharpest = 1.0 if scale % 2 else math.cos(math.pi / (2 * scale))
    if mtf >= sharpest - 1e-6:
        raise ValueError(
            f'MTF {mtf} at Nyquist is above the sharpest an x{scale} LR sampled at its pixel centres can have '
            f'({sharpest:.3f}); lower it or use another scale.'
        )
    sigma = brentq(response, 0.1, guess * 4, xtol=1e-12)  # at 0.1 the taps are the centre ones
    return _taps(sigma, scale, half)[0], sigma


def blur_decimate(hr, scale, mtf):
    """Per-band Gaussian PSF and point sampling at the LR pixel centres (no noise).

    Args:
        hr (np.ndarray): (H, W, C) float model values; H, W are mod-cropped to multiples of ``scale``.
        scale (int): Downscaling factor.
        mtf (list[float]): MTF at Nyquist of each band (:func:`resolve_mtf`).

    Returns:
        np.ndarray: (H // scale, W // scale, C) float64.
    """
    hr = mod_crop(hr, scale)
    taps = [psf_taps(m, scale)[0] for m in mtf]
    length = max(len(t) for t in taps)
    # Shorter tap sets are zero-padded symmetrically, so every band shares one kernel length and centre.
    kernel = np.stack([np.pad(t, (length - len(t)) // 2) for t in taps])  # (C, K)
    half = (length - scale) // 2
    # Symmetric padding (MATLAB's imresize's) keeps the borders' level; 'symmetric' also copes with pads
    # longer than the image (np.pad repeats the reflection).
    x = np.pad(np.asarray(hr, dtype=np.float64), ((half, half), (half, half), (0, 0)), mode='symmetric')
    # LR pixel i sums taps over padded HR i * scale ... i * scale + length - 1: strided windows (views, no copy).
    # NumPy rather than torch: prepare_dataset forks workers, and torch's thread pools do not survive a fork.
    x = np.einsum('hwck,ck->hwc', sliding_window_view(x, length, axis=0)[::scale], kernel)  # rows
    return np.einsum('hwck,ck->hwc', sliding_window_view(x, length, axis=1)[:, ::scale], kernel)  # columns


def sensor_lr(hr, scale, mtf, noise_std=0.0, seed=None):
    """Sensor-like LR of an HR image in model values (see the module docstring).

    Args:
        hr (np.ndarray): (H, W, C) float model values (e.g. reflectance from
            :meth:`~rssr_utils.radiometry.Radiometry.to_model`); H, W are mod-cropped to multiples of ``scale``.
        scale (int): Downscaling factor.
        mtf (float | list[float] | str | dict | Radiometry): MTF at Nyquist per band (:func:`resolve_mtf`),
            e.g. ``'sentinel2_l2a'`` for a B2, B3, B4, B8 stack.
        noise_std (float | list[float]): Standard deviation of the Gaussian noise per band, in model units.
            Default 0 (no noise).
        seed (int | None): Seed of the noise (e.g. ``image_seed(run_seed, key)``); None draws fresh noise.

    Returns:
        np.ndarray: (H // scale, W // scale, C) float32, not clipped (noise may leave the valid range).
    """
    if hr.ndim != 3:
        raise ValueError(f'sensor_lr: expected an (H, W, C) image, got shape {hr.shape}.')
    if min(hr.shape[:2]) < scale:
        raise ValueError(f'sensor_lr: an image of {hr.shape[0]}x{hr.shape[1]} is smaller than the scale {scale}.')
    num_bands = hr.shape[2]
    lr = blur_decimate(hr, scale, resolve_mtf(mtf, num_bands))
    std = np.asarray(noise_std, dtype=np.float64).ravel()
    if std.size not in (1, num_bands):
        raise ValueError(f'sensor_lr: {std.size} noise_std values for {num_bands} bands; give one or one per band.')
    std = np.broadcast_to(std, (num_bands,))
    if np.any(std < 0):
        raise ValueError(f'sensor_lr: noise_std {std.tolist()} must be >= 0.')
    if np.any(std > 0):
        lr = lr + np.random.default_rng(seed).standard_normal(lr.shape) * std
    return lr.astype(np.float32)


class SensorLR:
    """Sensor-like LR of stored images (the integers an image file holds), for ``prepare_dataset --lr sensor``.

    Stored values go to model values through the radiometry, :func:`sensor_lr` runs (nodata pixels are first
    filled with their nearest valid value), and the LR goes back to the stored type; an LR pixel whose
    ``scale x scale`` block held nodata is written as nodata. The noise of an image is seeded by
    ``image_seed(seed, key)``.

    Args:
        radiometry (str | dict | Radiometry | None): How stored values map to model values; None: the
            ``uint8`` / ``uint16`` profile of each image's type.
        mtf (float | list[float] | None): MTF at Nyquist per band; None: the radiometry's (``band_mtf``).
        noise_std (float | list[float]): Per-band Gaussian noise, model units. Default 0.
        seed (int): The run's seed. Default 0.
        bgr (bool): Images are BGR (as OpenCV decodes files) while ``mtf`` and ``noise_std`` list the file's
            bands in order (red, green, blue). Default True.
    """

    def __init__(self, radiometry=None, mtf=None, noise_std=0.0, seed=0, bgr=True):
        self.radiometry = None if radiometry is None else Radiometry.resolve(radiometry, '--radiometry')
        self.mtf, self.noise_std, self.seed, self.bgr = mtf, noise_std, seed, bgr

    def __call__(self, hr, scale, key):
        """(H, W, C) stored image -> (H // scale, W // scale, C) LR in the same type; ``key`` names the image."""
        radiometry = self.radiometry or Radiometry.resolve('uint8' if hr.dtype == np.uint8 else 'uint16')
        order = slice(None, None, -1) if self.bgr and hr.ndim == 3 and hr.shape[2] == 3 else slice(None)
        hr = mod_crop(hr, scale)[..., order]
        valid = radiometry.valid_mask(hr)
        model = fill_invalid(radiometry.to_model(hr), valid)
        mtf = self.mtf if self.mtf is not None else radiometry
        lr = sensor_lr(model, scale, mtf, self.noise_std, image_seed(self.seed, key))
        h, w = lr.shape[:2]
        lr_valid = valid.reshape(h, scale, w, scale).all(axis=(1, 3))
        return radiometry.from_model(lr, lr_valid).astype(hr.dtype)[..., order]


def prepare_lr_maker(out, kind, scales, radiometry=None, mtf=None, noise_std=None, seed=0):
    """The LR maker of ``prepare_dataset --lr`` (None: MATLAB bicubic), checked before anything is written.

    A sensor run records its settings in ``<out>/lr_settings.json``; a run whose settings differ from the
    LR already in ``out`` (a folder with ``splits/`` and no record holds bicubic LR) is refused, so LR
    images of two kinds never mix.

    Args:
        out (str): Output root of prepare_dataset.
        kind (str): 'bicubic' or 'sensor'.
        scales (list[int]): The scales to be made (each must reach the MTF).
        radiometry (str | None), mtf (list[float] | None), noise_std (list[float] | None), seed (int):
            :class:`SensorLR`'s; only with 'sensor'.
    """
    settings = dict(radiometry=radiometry, mtf=mtf, noise_std=noise_std)
    make_lr = None
    if kind == 'bicubic':
        named = [f'--{"noise" if k == "noise_std" else k}' for k, v in settings.items() if v is not None]
        if named:
            raise ValueError(f'{", ".join(named)} only apply with --lr sensor.')
        settings = {'lr': 'bicubic'}
    else:
        settings = {'lr': 'sensor', **settings, 'noise_std': noise_std or 0.0, 'seed': seed}
        make_lr = SensorLR(radiometry, mtf, settings['noise_std'], seed)
        try:  # image files decode to 3 bands; a bad MTF, or one a scale cannot make, is named now
            values = resolve_mtf(mtf if mtf is not None else make_lr.radiometry or 'uint8', 3, '--mtf')
            for scale in scales:
                for value in values:
                    psf_taps(value, scale)
        except ValueError as error:
            raise ValueError(f'--lr sensor: {error} (--mtf gives the MTF at Nyquist, once or per band)') from None
    path = os.path.join(out, 'lr_settings.json')
    before = {'lr': 'bicubic'}
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as f:
            before = json.load(f)
    if before != settings and (os.path.isfile(path) or os.path.isdir(os.path.join(out, 'splits'))):
        raise ValueError(f'{out} holds LR made with {before}, not {settings}; use another --out or the same settings.')
    if make_lr is not None:
        os.makedirs(out, exist_ok=True)
        with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
            json.dump(settings, f)
        os.replace(f'{path}.tmp', path)
    return make_lr
