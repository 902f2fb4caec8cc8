"""No-reference LR consistency of a super-resolved scene (the consistency checks of opensr-test).

A real scene has no HR to score against, but its SR, degraded back to the LR
grid the way the LR was made, should give the LR again.
:func:`lr_consistency` degrades the SR (per-band MTF-Gaussian PSF and point
sampling, :func:`rssr_data.sensor_degradations.blur_decimate`, or
MATLAB-bicubic when no MTF is given) and compares it with the LR:

* ``reflectance_mae``: mean absolute difference, in model units (reflectance
  for ``sentinel2_l2a``), over valid pixels and bands;
* ``spectral_angle``: mean spectral angle in degrees
  (:func:`~rssr_metrics.rs_metric.calculate_sam`; None for 1-band data);
* ``shift_yx`` / ``shift_px``: the displacement (rows, columns) of the
  degraded SR against the LR, and its length, in LR pixels, by phase
  cross-correlation upsampled 100 times (scikit-image's
  ``phase_cross_correlation``, Guizar-Sicairos' method, without spectral
  whitening) on the band mean, Hann-windowed.

A whole scene's SR rarely fits in memory: score windows cut at the same
place from the SR and the LR, with ``border`` LR pixels left out on each side
(where the degradation would reach past the window and pad instead), and
merge the reports with :func:`combine_reports`.
"""

import math

import numpy as np
from basicsr.utils.matlab_functions import imresize
from scipy import ndimage
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from rssr_data.sensor_degradations import blur_decimate, psf_taps, resolve_mtf

from .rs_metric import NoValidPixelsError, calculate_sam

_BICUBIC_REACH = 2  # LR pixels MATLAB's bicubic kernel reaches on each side when downscaling


def degrade_like_lr(sr, scale, mtf=None):
    """SR (sH, sW, C) model values -> (H, W, C) float64 on the LR grid, the way sensor-like LR is made.

    Args:
        sr (np.ndarray): (H * scale, W * scale, C) model values.
        scale (int): SR factor.
        mtf (float | list[float] | str | dict | Radiometry | None): MTF at Nyquist per band
            (:func:`~rssr_data.sensor_degradations.resolve_mtf`); None: MATLAB-bicubic downscaling (how the
            bicubic-trained models' LR was made).

    Returns:
        tuple[np.ndarray, int]: the degraded SR and how many LR pixels each side its kernel reaches.
    """
    if mtf is None:
        return np.asarray(imresize(np.asarray(sr, dtype=np.float64), 1 / scale)), _BICUBIC_REACH
    values = resolve_mtf(mtf, sr.shape[2], 'lr_consistency: mtf')
    reach = max((len(psf_taps(m, scale)[0]) - scale) // 2 for m in values)
    return blur_decimate(sr, scale, values), math.ceil(reach / scale)


def lr_consistency(sr, lr, scale, mtf=None, mask=None, border=0):
    """How well an SR scene degraded back to the LR grid matches the LR (see the module docstring).

    Args:
        sr (np.ndarray): (H * scale, W * scale, C) super-resolved scene, model values.
        lr (np.ndarray): (H, W, C) the LR it was made from, model values.
        scale (int): SR factor.
        mtf (float | list[float] | str | dict | Radiometry | None): the sensor's MTF at Nyquist per band or a
            radiometry carrying it (e.g. ``'sentinel2_l2a'``); None: MATLAB-bicubic downscaling.
        mask (np.ndarray | None): (H, W) bool on the LR grid, True = valid. It is shrunk by the degradation
            kernel's reach, so no compared pixel saw SR made over nodata.
        border (int | None): LR pixels left out on each side (for windows of a larger scene); None: the
            degradation kernel's reach. Default 0 (a whole image: its edges are the image's).

    Returns:
        dict: ``reflectance_mae`` (float), ``spectral_angle`` (float degrees, None for 1 band),
        ``shift_yx`` ([rows, columns] LR pixels the degraded SR is displaced by), ``shift_px`` (its length),
        ``pixels`` (LR pixels compared).

    Raises:
        NoValidPixelsError: no valid LR pixel is left.
    """
    sr, lr = np.asarray(sr, dtype=np.float64), np.asarray(lr, dtype=np.float64)
    if sr.ndim != 3 or lr.ndim != 3 or sr.shape != (lr.shape[0] * scale, lr.shape[1] * scale, lr.shape[2]):
        raise ValueError(
            f'lr_consistency: SR {sr.shape} must be the LR {lr.shape} times {scale} in height and width, '
            'with the same bands.'
        )
    degraded, reach = degrade_like_lr(sr, scale, mtf)
    valid = np.ones(lr.shape[:2], bool) if mask is None else np.asarray(mask, dtype=bool)
    if valid.shape != lr.shape[:2]:
        raise ValueError(f'lr_consistency: mask {valid.shape} must be the LR grid {lr.shape[:2]} (True = valid).')
    if not valid.all():
        valid = ndimage.binary_erosion(valid, np.ones((2 * reach + 1,) * 2, bool), border_value=1)
    border = reach if border is None else border
    if border:
        valid = valid.copy()
        valid[:border], valid[-border:], valid[:, :border], valid[:, -border:] = False, False, False, False
    if not valid.any():
        raise NoValidPixelsError('lr_consistency: no valid LR pixel away from nodata; nothing to compare.')
    spectral = calculate_sam(degraded, lr, 0, mask=valid) if lr.shape[2] > 1 else None
    shift = _shift(degraded.mean(axis=2), lr.mean(axis=2), valid)
    return {
        'reflectance_mae': float(np.abs(degraded[valid] - lr[valid]).mean()),
        'spectral_angle': spectral,
        'shift_yx': [float(s) for s in shift],
        'shift_px': float(np.hypot(*shift)),
        'pixels': int(valid.sum()),
    }


def _shift(moving, reference, valid):
    """Displacement (rows, columns) of ``moving`` against ``reference`` (H, W), by upsampled phase correlation.

    Invalid pixels take the valid mean (so they carry no structure), both images lose their mean and are
    Hann-windowed (so the image edges, which phase correlation sees as wrapped around, weigh nothing).
    """
    hann = window('hann', reference.shape)
    images = []
    for image in (reference, moving):
        level = image[valid].mean()
        images.append(np.where(valid, image - level, 0.0) * hann)
    # Plain cross-correlation (normalization=None): whitening the spectrum ('phase', scikit-image's default)
    # lets the weak high frequencies of smooth scenes pull the peak towards zero (half the shift, measured).
    # scikit-image gives the shift that registers `moving` onto `reference`: the displacement's opposite.
    shift = phase_cross_correlation(images[0], images[1], upsample_factor=100, normalization=None)[0]
    return -shift


def combine_reports(reports):
    """One report from the :func:`lr_consistency` reports of a scene's windows: pixel-weighted means.

    ``shift_yx`` is the weighted mean displacement and ``shift_px`` its length; ``spectral_angle`` is None
    when the windows have none (1 band).
    """
    if not reports:
        raise NoValidPixelsError('combine_reports: no window was scored; nothing to combine.')
    weights = np.array([r['pixels'] for r in reports], dtype=np.float64)

    def mean(key):
        return np.average(np.array([r[key] for r in reports], dtype=np.float64), axis=0, weights=weights)

    shift = mean('shift_yx')
    return {
        'reflectance_mae': float(mean('reflectance_mae')),
        'spectral_angle': None if reports[0]['spectral_angle'] is None else float(mean('spectral_angle')),
        'shift_yx': [float(v) for v in shift],
        'shift_px': float(np.hypot(*shift)),
        'pixels': int(weights.sum()),
    }
