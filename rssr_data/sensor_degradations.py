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

import math

import numpy as np
import torch
from scipy.optimize import brentq
from torch.nn import functional as F

from rssr_utils.radiometry import Radiometry

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
    num_bands = hr.shape[2]
    taps = [psf_taps(m, scale)[0] for m in mtf]
    length = max(len(t) for t in taps)
    # Shorter tap sets are zero-padded symmetrically, so every band shares one kernel length and centre.
    kernel = np.stack([np.pad(t, (length - len(t)) // 2) for t in taps])  # (C, K)
    half = (length - scale) // 2
    # Symmetric padding (MATLAB's imresize's) keeps the borders' level; 'symmetric' also copes with pads
    # longer than the image (np.pad repeats the reflection).
    padded = np.pad(np.asarray(hr, dtype=np.float64), ((half, half), (half, half), (0, 0)), mode='symmetric')
    x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None]  # (1, C, H + 2h, W + 2h)
    k = torch.from_numpy(kernel)
    x = F.conv2d(x, k[:, None, :, None], stride=(scale, 1), groups=num_bands)  # rows: blur + sample
    x = F.conv2d(x, k[:, None, None, :], stride=(1, scale), groups=num_bands)  # columns
    return x[0].permute(1, 2, 0).numpy()


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
