"""Denoising HR images before making LR (the FAT paper's finding for UC Merced / AID / NWPU).

Two methods, on BGR HWC integer images (8 or 16 bit), returning the same type:

* ``nlm``: OpenCV's non-local means. 8-bit images go through
  ``fastNlMeansDenoisingColored`` (CIELAB; ``strength`` = h for L, ``h_color`` for
  a/b). OpenCV's colour variant is 8-bit only, so 16-bit images go through
  ``fastNlMeansDenoising`` with the L1 patch distance (OpenCV's only 16-bit mode)
  on the three channels jointly, with h x 257. The L1 weighting is not the
  colour variant's, so a 16-bit strength does not denoise like the same 8-bit one
  (on the tests' smooth image with noise sigma 8, 16-bit h = 12 did what 8-bit
  h = 4 does): compare the PSNRs in provenance.json, or use BM3D for 16-bit data.
* ``bm3d``: the ``bm3d`` package's ``bm3d_rgb`` (opponent colour space) on floats,
  so 16-bit precision is kept; ``strength`` = the noise standard deviation in
  8-bit grey levels (sigma_psd = strength / 255).
"""

import cv2
import numpy as np

METHODS = ('nlm', 'bm3d')
DEFAULT_STRENGTH = {'nlm': 3.0, 'bm3d': 3.0}


def nlm(img, strength=3.0, h_color=None, template_size=7, search_size=21):
    """OpenCV non-local means of a BGR HWC uint8/uint16 image (see the module docstring)."""
    h_color = strength if h_color is None else h_color
    if img.dtype == np.uint8:
        return cv2.fastNlMeansDenoisingColored(img, None, strength, h_color, template_size, search_size)
    return cv2.fastNlMeansDenoising(img, [strength * 257.0], None, template_size, search_size, cv2.NORM_L1)


def bm3d_denoise(img, strength=3.0, profile='np'):
    """BM3D (``bm3d.bm3d_rgb``) of a BGR HWC uint8/uint16 image; ``strength`` in 8-bit grey levels."""
    try:
        import bm3d
    except ImportError as error:
        raise ImportError('--method bm3d needs the bm3d package: pip install bm3d (or ".[denoise]").') from error
    peak = np.iinfo(img.dtype).max
    rgb = img[..., ::-1].astype(np.float64) / peak
    out = bm3d.bm3d_rgb(rgb, strength / 255.0, profile=profile)
    return np.clip(np.round(out[..., ::-1] * peak), 0, peak).astype(img.dtype)


def denoise(img, method, strength=None, **kwargs):
    """Denoise ``img`` (BGR HWC uint8/uint16) with ``method`` ('nlm' or 'bm3d'); returns a new array."""
    if method not in METHODS:
        raise ValueError(f'denoise method {method!r}: use one of {METHODS}.')
    strength = DEFAULT_STRENGTH[method] if strength is None else strength
    if method == 'nlm':
        return nlm(img, strength, **kwargs)
    return bm3d_denoise(img, strength, **kwargs)


def psnr(a, b):
    """PSNR in dB between two images of one integer type, on the type's full range (inf when equal)."""
    peak = float(np.iinfo(a.dtype).max)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else float(10 * np.log10(peak**2 / mse))
