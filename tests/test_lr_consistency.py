"""No-reference LR consistency: a perfect SR scores zero, a shifted one gives its shift, masks shrink."""

import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize
from scipy import ndimage

from rssr_data.sensor_degradations import sensor_lr
from rssr_metrics import NoValidPixelsError
from rssr_metrics.consistency import combine_reports, lr_consistency


def _field(size, bands=4, seed=0, width=0.05):
    """(size, size, bands) periodic smooth random reflectance-like field (Gaussian-filtered white noise)."""
    rng = np.random.default_rng(seed)
    freq = np.fft.fftfreq(size)
    low_pass = np.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / (2 * width**2))[..., None]
    field = np.real(
        np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size, bands)), axes=(0, 1)) * low_pass, axes=(0, 1))
    )
    return 0.3 + 0.1 * field / field.std() + np.linspace(0, 0.1, bands)  # bands of different levels


def test_perfect_sr_is_consistent():
    hr = _field(128)
    report = lr_consistency(hr, sensor_lr(hr, 4, 'sentinel2_l2a'), 4, mtf='sentinel2_l2a')
    assert report['reflectance_mae'] < 1e-7 and report['spectral_angle'] < 1e-4 and report['shift_px'] < 0.01
    assert report['pixels'] == 32 * 32
    # Without an MTF the SR is degraded MATLAB-bicubic, as bicubic-trained models' LR was made.
    assert lr_consistency(hr, imresize(hr, 1 / 4), 4)['reflectance_mae'] < 1e-12
    # Degraded with another MTF than the LR's, the SR no longer matches.
    assert lr_consistency(hr, sensor_lr(hr, 4, 0.1), 4, mtf=0.6)['reflectance_mae'] > 1e-3


@pytest.mark.parametrize('shift_hr', [(1.2, -1.8), (-2.6, 0.4)])
def test_a_subpixel_shift_is_recovered_within_a_tenth_of_a_pixel(shift_hr):
    hr = _field(256, seed=1)
    lr = sensor_lr(hr, 4, 0.3)
    shifted = np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(hr, axes=(0, 1)), (*shift_hr, 0)), axes=(0, 1)))
    report = lr_consistency(shifted, lr, 4, mtf=0.3)
    expected = np.array(shift_hr) / 4  # LR pixels
    np.testing.assert_allclose(report['shift_yx'], expected, atol=0.1)
    assert report['shift_px'] == pytest.approx(np.hypot(*expected), abs=0.1)
    assert report['reflectance_mae'] > 0.005 and report['spectral_angle'] > 0.5


def test_shift_of_a_non_periodic_crop():
    big = _field(512, bands=3, seed=2)
    lr = sensor_lr(big[100:356, 100:356], 4, 0.3)
    moved = big[99:355, 102:358]  # content moved down one HR row and left two HR columns
    np.testing.assert_allclose(lr_consistency(moved, lr, 4, mtf=0.3)['shift_yx'], [0.25, -0.5], atol=0.1)


def test_mask_shrinks_by_the_kernel_reach_and_nodata_sr_is_not_read():
    hr = _field(128, seed=3)
    lr = sensor_lr(hr, 4, 0.3)
    mask = np.ones((32, 32), bool)
    mask[:, 24:] = False
    garbage = hr.copy()
    garbage[:, 24 * 4 :] = 5.0  # what a network makes over filled nodata
    report = lr_consistency(garbage, lr, 4, mtf=0.3, mask=mask)
    assert report['reflectance_mae'] < 1e-7 and report['pixels'] < 32 * 24
    with pytest.raises(NoValidPixelsError, match='no valid LR pixel'):
        lr_consistency(hr, lr, 4, mtf=0.3, mask=np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match=r'SR \(128, 128, 4\) must be the LR \(16, 16, 4\) times 4'):
        lr_consistency(hr, lr[:16, :16], 4)


def test_windows_of_a_scene_with_a_border_and_combined():
    hr = _field(256, seed=4)
    lr = sensor_lr(hr, 4, 0.3)
    whole = lr_consistency(hr, lr, 4, mtf=0.3)
    corners = [(r, c) for r in (0, 32) for c in (0, 32)]  # LR pixels
    pairs = [(hr[4 * r : 4 * r + 128, 4 * c : 4 * c + 128], lr[r : r + 32, c : c + 32]) for r, c in corners]
    cut = [lr_consistency(sr_window, lr_window, 4, 0.3) for sr_window, lr_window in pairs]
    # Without a border the window edges are padded, not the scene's: they no longer match the LR.
    assert max(report['reflectance_mae'] for report in cut) > 100 * whole['reflectance_mae']
    bordered = [lr_consistency(sr_window, lr_window, 4, 0.3, border=None) for sr_window, lr_window in pairs]
    combined = combine_reports(bordered)
    assert combined['reflectance_mae'] < 1e-7 and combined['shift_px'] < 0.01
    assert combined['pixels'] == sum(report['pixels'] for report in bordered) < 4 * 32 * 32
    reports = [
        {'reflectance_mae': 1.0, 'spectral_angle': 2.0, 'shift_yx': [0.2, 0.0], 'pixels': 3},
        {'reflectance_mae': 3.0, 'spectral_angle': 4.0, 'shift_yx': [0.0, 0.4], 'pixels': 1},
    ]
    merged = combine_reports(reports)
    assert merged['reflectance_mae'] == 1.5 and merged['spectral_angle'] == 2.5
    np.testing.assert_allclose(merged['shift_yx'], [0.15, 0.1])
