"""Remote-sensing metrics in BasicSR's ``METRIC_REGISTRY``: SAM, ERGAS, per-band PSNR and SSIM, with nodata masks.

Each is called as BasicSR calls its own (``calculate_metric(data, opt)`` ->
``METRIC_REGISTRY.get(type)(**data, **opt)``): ``img`` is the prediction,
``img2`` the reference, both (H, W, C) float arrays in MODEL values (e.g.
reflectance, :meth:`rssr_utils.radiometry.Radiometry.to_model`), any band
count; ``crop_border`` pixels are left out on each side; ``mask`` is an
(H, W) bool array, True = valid (cropped with the images). Every function
accepts and ignores the keys it has no use for (``radiometry``, ``mask``,
``scale``, ``better``...), so one ``val.metrics`` entry works whatever the
model puts in ``data``.

Definitions (all in float64; torchmetrics' functional SAM, ERGAS and SSIM do
the arithmetic, this module the masking and the per-band bookkeeping; PSNR is
one line of NumPy because torchmetrics' PSNR converts dB with a float32
constant, 2e-6 dB off at 40 dB):

* ``calculate_sam``: mean spectral angle, in DEGREES, between the pixel
  spectra of ``img`` and ``img2``, ``acos(<x, y> / (|x| |y|))``. Pixels whose
  spectrum is all zeros in either image have no angle (torchmetrics returns
  NaN for them) and are left out, as sewar does.
* ``calculate_ergas``: ``100 / scale * sqrt(mean_b(RMSE_b^2 / mean(ref_b)^2))``
  (``scale`` = HR / LR pixel-size ratio, 4 by default; sewar's ``r`` is
  ``1 / scale``).
* ``calculate_band_psnr``: mean over bands of ``10 log10(L_b^2 / MSE_b)``
  where ``L_b`` is the band's valid range in model values
  (``Radiometry.resolve(radiometry).data_range(C)``): 1.0 for ``uint8`` and
  the reflectance profiles (``sentinel2_l2a``: two images 0.01 apart give
  40 dB), not the stored type's maximum. Infinite when a band is identical
  (as BasicSR's ``calculate_psnr``).
* ``calculate_band_ssim``: mean over bands of MATLAB-style SSIM (11x11
  Gaussian window, sigma 1.5, K1 0.01, K2 0.03, only windows inside the image,
  as BasicSR's ``calculate_ssim``) with ``L_b`` as the data range.

**Masks.** A metric with a mask equals the metric on the valid pixels alone:
for SAM, ERGAS and PSNR the sums run over valid pixels; SSIM leaves out every
window that touches an invalid pixel, so when the valid pixels form a
rectangle it equals SSIM on that crop. Values under invalid pixels are never
read (NaN there is fine).

**Empty windows.** When no pixel (SSIM: no whole window; SAM: no non-zero
spectrum) is left, the functions raise :class:`NoValidPixelsError` (a
``ValueError``) rather than return NaN: the caller skips the window, so a
validation log never holds a NaN. :func:`is_empty` tells beforehand whether a
mask leaves no pixel.
"""

import math

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from torchmetrics.functional.image import (
    error_relative_global_dimensionless_synthesis,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

from rssr_utils.radiometry import Radiometry

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # MATLAB's ssim.m and BasicSR's calculate_ssim


class NoValidPixelsError(ValueError):
    """A metric was asked for on a window with no valid pixel (or SSIM window) left; skip the window."""


def _crop(array, crop_border):
    return array[crop_border:-crop_border, crop_border:-crop_border, ...] if crop_border else array


def is_empty(mask, crop_border=0):
    """True when ``mask`` ((H, W) bool, True = valid) leaves no valid pixel after ``crop_border``; None: False."""
    return mask is not None and not np.any(_crop(np.asarray(mask, dtype=bool), crop_border))


def _prepare(name, img, img2, crop_border, mask, input_order='HWC'):
    """Both images as cropped float64 (H, W, C) arrays and the cropped (H, W) mask (all True when None)."""
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'{name}: input_order {input_order!r} must be HWC or CHW.')
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    elif input_order == 'CHW':
        img, img2 = img.transpose(1, 2, 0), img2.transpose(1, 2, 0)
    if img.shape != img2.shape or img.ndim != 3:
        raise ValueError(f'{name}: img {img.shape} and img2 {img2.shape} must be (H, W, C) arrays of one shape.')
    if mask is None:
        mask = np.ones(img.shape[:2], dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != img.shape[:2]:
        raise ValueError(f'{name}: mask {mask.shape} must be (H, W) = {img.shape[:2]} (True = valid).')
    img, img2, mask = (_crop(a, crop_border) for a in (img, img2, mask.astype(bool)))
    if not mask.any():
        raise NoValidPixelsError(f'{name}: no valid pixel in this image (mask and crop_border {crop_border}); skip it.')
    return img.astype(np.float64), img2.astype(np.float64), mask


def _valid_pixels(img, mask):
    """(H, W, C) -> (1, C, N, 1) tensor of the N valid pixels (the layout torchmetrics' image metrics take)."""
    return torch.from_numpy(np.ascontiguousarray(img[mask].T))[None, :, :, None]


def _refuse_y_channel(name, test_y_channel):
    if test_y_channel:
        raise ValueError(f'{name}: test_y_channel has no meaning for N-band data; remove it (or use calculate_psnr).')


@METRIC_REGISTRY.register()
def calculate_sam(img, img2, crop_border, mask=None, input_order='HWC', **kwargs):
    """Mean spectral angle in degrees (lower is better); pixels with an all-zero spectrum are left out.

    Args:
        img (np.ndarray): (H, W, C) prediction, model values.
        img2 (np.ndarray): (H, W, C) reference, model values.
        crop_border (int): Pixels left out on each side.
        mask (np.ndarray | None): (H, W) bool, True = valid.
        input_order (str): 'HWC' (default) or 'CHW'.

    Raises:
        NoValidPixelsError: no valid pixel with a non-zero spectrum in both images.
    """
    img, img2, mask = _prepare('calculate_sam', img, img2, crop_border, mask, input_order)
    if img.shape[2] < 2:
        raise ValueError('calculate_sam: a spectral angle needs at least 2 bands; remove it for 1-band data.')
    pred, ref = _valid_pixels(img, mask), _valid_pixels(img2, mask)
    spectrum = (pred.norm(dim=1) > 0) & (ref.norm(dim=1) > 0)  # (1, N, 1): torchmetrics gives NaN elsewhere
    if not spectrum.any():
        raise NoValidPixelsError('calculate_sam: every valid pixel has an all-zero spectrum; no angle; skip it.')
    keep = spectrum[0, :, 0]
    angles = spectral_angle_mapper(pred[:, :, keep], ref[:, :, keep], reduction='none')
    return math.degrees(float(angles.mean()))


@METRIC_REGISTRY.register()
def calculate_ergas(img, img2, crop_border, mask=None, scale=4, input_order='HWC', **kwargs):
    """ERGAS (lower is better): ``100 / scale * sqrt(mean_b(RMSE_b^2 / mean(ref_b)^2))``.

    Args:
        img (np.ndarray): (H, W, C) prediction, model values.
        img2 (np.ndarray): (H, W, C) reference, model values (its band means divide).
        crop_border (int): Pixels left out on each side.
        mask (np.ndarray | None): (H, W) bool, True = valid.
        scale (float): HR / LR pixel-size ratio (the SR factor). Default: 4.
        input_order (str): 'HWC' (default) or 'CHW'.

    Raises:
        NoValidPixelsError: no valid pixel.
    """
    img, img2, mask = _prepare('calculate_ergas', img, img2, crop_border, mask, input_order)
    pred, ref = _valid_pixels(img, mask), _valid_pixels(img2, mask)
    return float(error_relative_global_dimensionless_synthesis(pred, ref, ratio=scale))


def _data_range(name, radiometry, num_bands):
    return Radiometry.resolve(radiometry, f'{name}: radiometry').data_range(num_bands)


@METRIC_REGISTRY.register()
def calculate_band_psnr(
    img, img2, crop_border, mask=None, radiometry=None, input_order='HWC', test_y_channel=False, **kwargs
):
    """Mean over bands of each band's PSNR over the radiometry's valid range, in dB (higher is better).

    Args:
        img (np.ndarray): (H, W, C) prediction, model values.
        img2 (np.ndarray): (H, W, C) reference, model values.
        crop_border (int): Pixels left out on each side.
        mask (np.ndarray | None): (H, W) bool, True = valid.
        radiometry (str | dict | Radiometry | None): Gives each band's data range in model values
            (``data_range(C)``); None = ``uint8`` (range 1.0, BasicSR's [0, 1] images).
        input_order (str): 'HWC' (default) or 'CHW'.
        test_y_channel (bool): Refused when True (no Y channel in N-band data).

    Raises:
        NoValidPixelsError: no valid pixel.
    """
    _refuse_y_channel('calculate_band_psnr', test_y_channel)
    img, img2, mask = _prepare('calculate_band_psnr', img, img2, crop_border, mask, input_order)
    peak = _data_range('calculate_band_psnr', radiometry, img.shape[2])
    mse = np.mean((img[mask] - img2[mask]) ** 2, axis=0)  # (C,)
    with np.errstate(divide='ignore'):  # an identical band: inf, as BasicSR's calculate_psnr
        return float(np.mean(10 * np.log10(peak**2 / mse)))


@METRIC_REGISTRY.register()
def calculate_band_ssim(
    img, img2, crop_border, mask=None, radiometry=None, input_order='HWC', test_y_channel=False, **kwargs
):
    """Mean over bands of MATLAB-style SSIM (11x11 Gaussian, sigma 1.5) over the radiometry's valid range.

    Windows that touch an invalid pixel are left out, so with a rectangular valid region the value equals
    SSIM on that crop.

    Args:
        img (np.ndarray): (H, W, C) prediction, model values.
        img2 (np.ndarray): (H, W, C) reference, model values.
        crop_border (int): Pixels left out on each side.
        mask (np.ndarray | None): (H, W) bool, True = valid.
        radiometry (str | dict | Radiometry | None): Gives each band's data range (see calculate_band_psnr).
        input_order (str): 'HWC' (default) or 'CHW'.
        test_y_channel (bool): Refused when True (no Y channel in N-band data).

    Raises:
        NoValidPixelsError: no 11x11 window lies wholly on valid pixels.
    """
    name = 'calculate_band_ssim'
    _refuse_y_channel(name, test_y_channel)
    img, img2, mask = _prepare(name, img, img2, crop_border, mask, input_order)
    pad = SSIM_WINDOW // 2
    if min(mask.shape) < SSIM_WINDOW:
        raise NoValidPixelsError(f'{name}: {mask.shape[0]}x{mask.shape[1]} pixels hold no {SSIM_WINDOW}-pixel window.')
    # A window centred at (i, j) is kept when its whole 11x11 footprint is valid (and inside the image).
    windows = torch.from_numpy(mask.astype(np.float64))[None, None]
    windows = (-torch.nn.functional.max_pool2d(-windows, SSIM_WINDOW, stride=1))[0, 0] > 0.5  # (H-10, W-10)
    if not windows.any():
        raise NoValidPixelsError(f'{name}: no {SSIM_WINDOW}x{SSIM_WINDOW} window lies wholly on valid pixels.')
    peak = torch.from_numpy(_data_range(name, radiometry, img.shape[2]))[:, None, None, None]
    # Invalid pixels only reach windows that are dropped; zeroed so NaN or huge nodata values cannot spread.
    pred = torch.from_numpy(np.where(mask[..., None], img, 0.0).transpose(2, 0, 1))[:, None] / peak
    ref = torch.from_numpy(np.where(mask[..., None], img2, 0.0).transpose(2, 0, 1))[:, None] / peak
    # Bands as a batch of one-channel images; the full map's centre crop holds the windows inside the image.
    _, ssim_map = structural_similarity_index_measure(
        pred, ref, sigma=SSIM_SIGMA, kernel_size=SSIM_WINDOW, data_range=1.0, reduction='none', return_full_image=True
    )
    ssim_map = ssim_map[:, 0, pad:-pad, pad:-pad]  # (C, H-10, W-10)
    return float(ssim_map[:, windows].mean())
