"""RS metrics: values against torchmetrics, sewar and BasicSR, masks equal valid crops, the registry call."""

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric, calculate_ssim
from torchmetrics.functional.image import (
    error_relative_global_dimensionless_synthesis,
    peak_signal_noise_ratio,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

import rssr_metrics  # noqa: F401  (registers the metrics)
from rssr_metrics import NoValidPixelsError, is_empty
from rssr_metrics.rs_metric import calculate_band_psnr, calculate_band_ssim, calculate_ergas, calculate_sam

sewar = pytest.importorskip('sewar.full_ref')
Filter = pytest.importorskip('sewar.utils').Filter

METRICS = {
    'calculate_sam': calculate_sam,
    'calculate_ergas': calculate_ergas,
    'calculate_band_psnr': calculate_band_psnr,
    'calculate_band_ssim': calculate_band_ssim,
}


def _pair(shape=(40, 36, 4), seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0.02, 0.6, shape)
    pred = np.clip(ref + rng.normal(0, noise, shape), 0, 1)
    return pred, ref


def _nchw(a):
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]


@pytest.mark.parametrize('bands', [2, 4, 13])
def test_values_match_torchmetrics_and_sewar(bands):
    pred, ref = _pair((40, 36, bands), seed=bands)
    sam = calculate_sam(pred, ref, 0)
    np.testing.assert_allclose(sam, np.degrees(sewar.sam(ref, pred)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(sam, np.degrees(float(spectral_angle_mapper(_nchw(pred), _nchw(ref)))), atol=1e-5)
    for scale in (2, 4, 8):
        ergas = calculate_ergas(pred, ref, 0, scale=scale)
        np.testing.assert_allclose(ergas, sewar.ergas(ref, pred, r=1 / scale), rtol=0, atol=1e-5)
        torchmetrics_ergas = error_relative_global_dimensionless_synthesis(_nchw(pred), _nchw(ref), ratio=scale)
        np.testing.assert_allclose(ergas, float(torchmetrics_ergas), atol=1e-5)
    psnr = calculate_band_psnr(pred, ref, 0)
    per_band = [sewar.psnr(ref[..., b], pred[..., b], MAX=1.0) for b in range(bands)]
    np.testing.assert_allclose(psnr, np.mean(per_band), rtol=0, atol=1e-5)
    torchmetrics_psnr = peak_signal_noise_ratio(_nchw(pred), _nchw(ref), 1.0, dim=(0, 2, 3))  # mean of bands'
    np.testing.assert_allclose(psnr, float(torchmetrics_psnr), atol=1e-5)
    ssim = calculate_band_ssim(pred, ref, 0)
    gaussian = dict(fltr=Filter.GAUSSIAN, sigma=1.5, ws=11)
    np.testing.assert_allclose(ssim, sewar.ssim(ref, pred, MAX=1.0, fltr_specs=gaussian, mode='valid')[0], atol=1e-5)
    # BasicSR's MATLAB-style SSIM (per channel on [0, 255]): the same windows, the same constants.
    per_band = [calculate_ssim(pred[..., b : b + 1] * 255, ref[..., b : b + 1] * 255, 0) for b in range(bands)]
    np.testing.assert_allclose(ssim, np.mean(per_band), atol=1e-5)
    # torchmetrics averages over reflection-padded borders too, so it differs; on the same windows it agrees.
    _, full = structural_similarity_index_measure(_nchw(pred), _nchw(ref), data_range=1.0, return_full_image=True)
    np.testing.assert_allclose(ssim, float(full[..., 5:-5, 5:-5].mean()), atol=1e-5)


def test_sentinel2_range_is_reflectance_one():
    ref = np.random.default_rng(1).uniform(0, 0.5, (32, 32, 4))
    assert calculate_band_psnr(ref + 0.01, ref, 0, radiometry='sentinel2_l2a') == pytest.approx(40.0, abs=1e-6)
    # The stored type's maximum would be another range: uint16's is 1/65535 in model values of 'uint16'.
    explicit = {'scale': [1e-4], 'offset': [-0.1], 'valid_range': [1000, 6000], 'nodata': 0}
    assert calculate_band_psnr(ref + 0.01, ref, 0, radiometry=explicit) == pytest.approx(40 - 20 * np.log10(2))
    assert calculate_band_psnr(ref, ref, 0) == float('inf')
    # SSIM's constants follow the range too: range 1.0 (sentinel2_l2a) equals range 1.0 (uint8, the default).
    pred = ref + np.random.default_rng(2).normal(0, 0.02, ref.shape)
    assert calculate_band_ssim(pred, ref, 0, radiometry='sentinel2_l2a') == pytest.approx(
        calculate_band_ssim(pred, ref, 0), abs=1e-9
    )
    assert calculate_band_ssim(pred, ref, 0, radiometry=explicit) != pytest.approx(calculate_band_ssim(pred, ref, 0))


@pytest.mark.parametrize('name', list(METRICS))
def test_masked_metric_equals_metric_on_the_valid_crop(name):
    pred, ref = _pair((48, 44, 4), seed=3)
    mask = np.ones(pred.shape[:2], bool)
    mask[:, 30:] = False  # a nodata strip on the right
    mask[:7] = False  # and on top
    pred[~mask], ref[~mask] = np.nan, -0.1  # whatever lies under nodata is never read
    kwargs = dict(scale=4, radiometry='sentinel2_l2a')
    masked = METRICS[name](pred, ref, 2, mask=mask, **kwargs)
    cropped = METRICS[name](pred[5:, :32], ref[5:, :32], 2, **kwargs)  # crop_border 2 leaves rows 7.., cols ..29
    assert np.isfinite(masked)
    np.testing.assert_allclose(masked, cropped, rtol=1e-12)


def test_ssim_mask_drops_every_window_touching_a_hole():
    pred, ref = _pair((40, 40, 3), seed=4)
    mask = np.ones((40, 40), bool)
    mask[20, 20] = False
    holed = pred.copy()
    holed[20, 20] = 1e6  # a wild value there changes nothing
    assert calculate_band_ssim(holed, ref, 0, mask=mask) == calculate_band_ssim(pred, ref, 0, mask=mask)
    # Without the hole the windows over it count again.
    assert calculate_band_ssim(pred, ref, 0, mask=mask) != calculate_band_ssim(pred, ref, 0)


def test_sam_leaves_out_zero_spectra_instead_of_nan():
    pred, ref = _pair((16, 16, 4), seed=5)
    ref[3, 4] = 0  # torchmetrics gives NaN for it
    assert np.isnan(float(spectral_angle_mapper(_nchw(pred), _nchw(ref))))
    mask = np.ones((16, 16), bool)
    mask[3, 4] = False
    assert calculate_sam(pred, ref, 0) == pytest.approx(calculate_sam(pred, ref, 0, mask=mask), abs=1e-12)
    with pytest.raises(NoValidPixelsError, match='all-zero spectrum'):
        calculate_sam(pred, np.zeros_like(ref), 0)


@pytest.mark.parametrize('name', list(METRICS))
def test_an_all_nodata_window_raises_a_named_error_not_nan(name):
    pred, ref = _pair((24, 24, 4))
    mask = np.zeros((24, 24), bool)
    mask[0] = True  # valid only inside the cropped border
    assert is_empty(mask, crop_border=1) and not is_empty(mask) and not is_empty(None)
    with pytest.raises(NoValidPixelsError, match=f'{name}: .*skip'):
        METRICS[name](pred, ref, 1, mask=mask)
    assert issubclass(NoValidPixelsError, ValueError)


def test_registry_call_as_basicsr_validation_makes_it():
    pred, ref = _pair((32, 32, 4), seed=6)
    mask = np.ones((32, 32), bool)
    data = dict(img=pred, img2=ref, mask=mask, radiometry='sentinel2_l2a')
    for name, function in METRICS.items():
        better = 'lower' if name in ('calculate_sam', 'calculate_ergas') else 'higher'
        opt = dict(type=name, crop_border=4, better=better)
        assert calculate_metric(data, opt) == function(pred, ref, 4, mask=mask, radiometry='sentinel2_l2a')
    assert calculate_metric(data, dict(type='calculate_ergas', crop_border=0, scale=8)) == pytest.approx(
        calculate_metric(data, dict(type='calculate_ergas', crop_border=0)) / 2
    )
    chw = calculate_band_psnr(pred.transpose(2, 0, 1), ref.transpose(2, 0, 1), 0, input_order='CHW')
    assert chw == calculate_band_psnr(pred, ref, 0)


@pytest.mark.parametrize(
    'call, message',
    [
        (lambda p, r: calculate_sam(p, r[:-1], 0), r'img \(8, 8, 4\) and img2 \(7, 8, 4\)'),
        (lambda p, r: calculate_ergas(p, r, 0, mask=np.ones((8, 7), bool)), r'mask \(8, 7\)'),
        (lambda p, r: calculate_band_psnr(p, r, 0, test_y_channel=True), 'test_y_channel'),
        (lambda p, r: calculate_sam(p[..., :1], r[..., :1], 0), 'at least 2 bands'),
        (lambda p, r: calculate_band_psnr(p, r, 0, radiometry='sentinel3'), 'calculate_band_psnr: radiometry'),
    ],
)
def test_bad_calls_are_one_named_line(call, message):
    pred, ref = _pair((8, 8, 4))
    with pytest.raises(ValueError, match=message) as info:
        call(pred, ref)
    assert '\n' not in str(info.value)
