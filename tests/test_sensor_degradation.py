"""Sensor-like LR: the MTF at Nyquist measured on sine gratings, the Gaussian curve, geometry, noise and seeds."""

import hashlib

import cv2
import numpy as np
import pytest

from rssr_data.degradation_draws import image_seed
from rssr_data.degradations import bicubic_lr
from rssr_data.prepare import split_entries
from rssr_data.sensor_degradations import SensorLR, gaussian_sigma, psf_taps, resolve_mtf, sensor_lr
from rssr_utils.radiometry import SENTINEL2_MTF, Radiometry
from tests.helpers.data import call_script, make_scenes

S2_RGBN = [SENTINEL2_MTF[b] for b in ('B2', 'B3', 'B4', 'B8')]


def _grating(size, scale, freq, axis, bands, phase=None):
    """(size, size, bands) cosine grating 0.4 +- 0.2 along ``axis`` at ``freq`` cycles per HR pixel.

    The default phase puts the crests on the LR pixel centres (HR position ``i * scale + (scale - 1) / 2``),
    where a grating at exactly the LR Nyquist frequency keeps all its modulation after sampling.
    """
    x = np.arange(size, dtype=np.float64)
    phase = -2 * np.pi * freq * (scale - 1) / 2 if phase is None else phase
    line = 0.4 + 0.2 * np.cos(2 * np.pi * freq * x + phase)
    image = line[None, :] if axis == 1 else line[:, None]
    return np.broadcast_to(image, (size, size))[..., None].repeat(bands, axis=2)


def _modulation(lr_line, freq_lr):
    """Amplitude of the cosine/sine at ``freq_lr`` (cycles per LR pixel) fitted to a line by least squares."""
    n = np.arange(len(lr_line))
    basis = np.stack([np.ones_like(n), np.cos(2 * np.pi * freq_lr * n), np.sin(2 * np.pi * freq_lr * n)], axis=1)
    coef = np.linalg.lstsq(basis, lr_line, rcond=None)[0]
    return float(np.hypot(coef[1], coef[2]))


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
@pytest.mark.parametrize('axis', [0, 1])
def test_lr_has_the_declared_mtf_at_nyquist(scale, axis):
    size = 32 * scale
    hr = _grating(size, scale, 0.5 / scale, axis, 4)
    lr = sensor_lr(hr, scale, 'sentinel2_l2a')  # B2, B3, B4, B8
    assert lr.shape == (32, 32, 4)
    margin = 4  # away from the padded borders
    for band, declared in enumerate(S2_RGBN):
        line = lr[16, margin:-margin, band] if axis == 1 else lr[margin:-margin, 16, band]
        measured = (line.max() - line.min()) / 2 / 0.2  # alternating samples: their half-range is the amplitude
        assert abs(measured - declared) <= 0.02, (band, measured, declared)
        # Across the grating (the other axis) nothing changes: the PSF is separable and normalised.
        across = lr[margin:-margin, 16, band] if axis == 1 else lr[16, margin:-margin, band]
        np.testing.assert_allclose(across, across[0], atol=1e-9)


@pytest.mark.parametrize('scale', [3, 4])
def test_below_nyquist_the_response_follows_the_gaussian_mtf(scale):
    mtf = 0.3
    sigma = gaussian_sigma(mtf, scale)
    for fraction in (0.5, 0.7, 0.9):
        freq = fraction * 0.5 / scale
        hr = _grating(48 * scale, scale, freq, 1, 1, phase=0.37)  # any phase: the fit does not care
        lr = sensor_lr(hr, scale, mtf)[24, 6:-6, 0]
        expected = np.exp(-2 * np.pi**2 * sigma**2 * freq**2)
        assert abs(_modulation(lr, freq * scale) / 0.2 - expected) <= 0.02


def test_taps_and_sigma():
    for scale in (2, 3, 4, 8):
        taps, sigma = psf_taps(0.26, scale)
        assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1])
        assert sigma == pytest.approx(gaussian_sigma(0.26, scale), rel=1e-3)  # well sampled: the formula holds
    # Sharp MTFs at scale 2 need the numeric sigma: the continuous formula would be 20 % too wide.
    assert psf_taps(0.7, 2)[1] < 0.85 * gaussian_sigma(0.7, 2)
    with pytest.raises(ValueError, match='sharpest an x2 LR'):
        psf_taps(0.75, 2)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_lr_pixel_centres_are_bicubics_and_constants_stay(scale):
    # A blob centred on LR pixel (5, 6)'s centre, HR (5 s + (s - 1) / 2, ...), stays centred on it: the LR is
    # symmetric about that pixel, as MATLAB-bicubic's is (a shifted grid would break the symmetry).
    y, x = np.mgrid[: 12 * scale, : 12 * scale]
    centre = (5 * scale + (scale - 1) / 2, 6 * scale + (scale - 1) / 2)
    blob = np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * (1.5 * scale) ** 2))[..., None]
    for lr in (sensor_lr(blob, scale, 0.3)[..., 0], bicubic_lr(blob.astype(np.float32), scale)[..., 0]):
        assert np.unravel_index(lr.argmax(), lr.shape) == (5, 6)
        np.testing.assert_allclose(lr[4, 6], lr[6, 6], atol=1e-6)
        np.testing.assert_allclose(lr[5, 5], lr[5, 7], atol=1e-6)
    constant = np.full((37, 42, 3), 0.25)
    out = sensor_lr(constant, 4, [0.2, 0.3, 0.4])
    assert out.shape == (9, 10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-7)


def test_noise_is_per_band_in_model_units_and_seeded():
    hr = np.full((128, 128, 3), 0.2)
    std = [0.0, 0.01, 0.05]
    a = sensor_lr(hr, 2, 0.3, noise_std=std, seed=7)
    assert np.array_equal(a, sensor_lr(hr, 2, 0.3, noise_std=std, seed=7))
    assert not np.array_equal(a, sensor_lr(hr, 2, 0.3, noise_std=std, seed=8))
    measured = (a - 0.2).reshape(-1, 3).std(axis=0)
    np.testing.assert_allclose(measured, std, atol=2e-3)


@pytest.mark.parametrize(
    'call, message',
    [
        (lambda: resolve_mtf([0.2, 0.3], 3), '2 MTF values for 3 bands'),
        (lambda: resolve_mtf(1.2, 1), 'strictly between 0 and 1'),
        (lambda: resolve_mtf('uint16', 4), 'no MTF for 4 bands'),
        (lambda: sensor_lr(np.zeros((8, 8, 2)), 2, 0.3, noise_std=[0.1, 0.1, 0.1]), '3 noise_std values'),
        (lambda: sensor_lr(np.zeros((3, 8, 2)), 4, 0.3), 'smaller than the scale 4'),
    ],
)
def test_bad_input_is_one_named_line(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert '\n' not in str(info.value)


def test_stored_images_go_through_the_radiometry_and_keep_nodata():
    rad = Radiometry.resolve('sentinel2_l2a')
    rng = np.random.default_rng(3)
    hr = rng.integers(1000, 5000, (32, 32, 3)).astype(np.uint16)
    hr[:5, :5] = 0  # nodata: the LR pixels of blocks that touch it are nodata too
    lr = SensorLR('sentinel2_l2a', mtf=[0.2, 0.3, 0.4], bgr=False)(hr, 4, 'key')
    assert lr.dtype == np.uint16 and lr.shape == (8, 8, 3)
    assert (lr[:2, :2] == 0).all() and (lr[2:, 2:] > 0).all() and (lr[0, 2:] > 0).all()
    model = sensor_lr(rad.to_model(np.where(hr == 0, hr[5, 5], hr)), 4, [0.2, 0.3, 0.4])
    np.testing.assert_array_equal(lr[3:, 3:], rad.from_model(model)[3:, 3:])  # away from the filled block
    # BGR images (as OpenCV decodes files) take the MTF in file band order.
    bgr = SensorLR('sentinel2_l2a', mtf=[0.2, 0.3, 0.4])(hr[..., ::-1], 4, 'key')
    np.testing.assert_array_equal(bgr, lr[..., ::-1])


def test_prepare_dataset_lr_sensor(tmp_path):
    src = make_scenes(tmp_path / 'download', per_class=3, size=(32, 40))
    out = tmp_path / 'prepared'
    args = ['--dataset', 'other', '--src', src, '--out', out, '--scales', 4, '--workers', 1, '--lr', 'sensor']
    sensor = ['--mtf', 0.3, '--noise', 0.01]
    proc = call_script('prepare_dataset.py', *args, *sensor)
    assert proc.returncode == 0, proc.stderr
    rel = split_entries(out / 'splits' / 'train.txt')[0]
    hr = cv2.imread(str(src / rel), cv2.IMREAD_UNCHANGED)
    lr = cv2.imread(str(out / 'train' / 'LR_x4' / rel), cv2.IMREAD_UNCHANGED)
    key = hashlib.sha256((src / rel).read_bytes()).hexdigest()
    np.testing.assert_array_equal(lr, SensorLR(None, [0.3], [0.01], seed=0)(hr, 4, key))
    model = sensor_lr(hr[..., ::-1] / 255.0, 4, 0.3, 0.01, image_seed(0, key))[..., ::-1]  # noise in RGB order
    np.testing.assert_array_equal(lr, np.clip(np.round(model.astype(np.float64) * 255), 0, 255))
    # Other settings on the same output, or sensor options with bicubic, are refused before anything is written.
    proc = call_script('prepare_dataset.py', *args, '--mtf', 0.5)
    assert proc.returncode == 1 and 'holds LR made with' in proc.stderr and 'use another --out' in proc.stderr
    proc = call_script('prepare_dataset.py', *args[:-2], '--mtf', 0.3)
    assert proc.returncode == 1 and '--mtf only apply with --lr sensor' in proc.stderr
    proc = call_script('prepare_dataset.py', *args[:5], tmp_path / 'x2', '--scales', 2, '--lr', 'sensor', '--mtf', 0.9)
    assert proc.returncode == 1 and 'sharpest an x2 LR' in proc.stderr and not (tmp_path / 'x2').exists()
