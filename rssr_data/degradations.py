"""The one LR function: MATLAB-bicubic downsampling of a mod-cropped HR image.

Every LR image rssr makes (``prepare_dataset.py``, ``lq_from_gt`` in the
datasets, the demo and benchmark sets, the bench scripts) comes from
:func:`bicubic_lr`, which does what the papers' MATLAB scripts
(``generate_mod_LR_bic.m``) do: ``imresize(modcrop(HR, s), 1/s)`` with
MATLAB's bicubic kernel (BasicSR's :func:`~basicsr.utils.matlab_functions.imresize`),
on ``im2double`` values, rounded back to the HR's integer type.
"""

import rssr_compat  # noqa: F401

import numpy as np
from basicsr.utils.matlab_functions import imresize


def mod_crop(img, scale):
    """Crop the bottom/right so that both sides are multiples of ``scale`` (MATLAB ``modcrop``).

    Args:
        img (np.ndarray): (H, W) or (H, W, C).
    """
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_lr(hr, scale, value_range=(0, 1)):
    """MATLAB-bicubic LR image of ``hr`` mod-cropped to a multiple of ``scale``.

    Args:
        hr (np.ndarray): (H, W, C) HR image: uint8 / uint16 (values scaled by the
            type's maximum, as MATLAB's ``im2double``), or float in [0, 1].
        scale (int): Downscaling factor.
        value_range (tuple): (low, high) that float results are clipped to, scalars or per-band
            arrays (model values of a radiometry's valid range). Default: (0, 1).

    Returns:
        np.ndarray: (H // scale, W // scale, C); integer input gives the same integer
        type, rounded; float input gives float32, clipped to ``value_range``.
    """
    if min(hr.shape[:2]) < scale:
        raise ValueError(f'an image of {hr.shape[0]}x{hr.shape[1]} is smaller than the scale {scale}: no LR pixel.')
    hr = mod_crop(hr, scale)
    # imresize returns a transposed layout; C order lets OpenCV work in place on it (augment's cv2.flip).
    if np.issubdtype(hr.dtype, np.integer):
        peak = np.iinfo(hr.dtype).max
        lr = imresize(hr.astype(np.float64) / peak, 1 / scale)
        return np.ascontiguousarray(np.clip(np.round(lr * peak), 0, peak).astype(hr.dtype))
    return np.ascontiguousarray(np.clip(imresize(hr, 1 / scale), *value_range).astype(np.float32))
