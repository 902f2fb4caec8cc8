"""Radiometry: profiles, stored <-> model round trips, masks and the nodata fill."""

import numpy as np
import pytest

from rssr_utils.radiometry import PROFILES, Radiometry, RadiometryError, fill_invalid


def test_uint8_is_todays_division_by_255_bit_for_bit():
    stored = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    model = PROFILES['uint8'].to_model(stored)
    assert model.dtype == np.float32
    assert np.array_equal(model, stored.astype(np.float32) / np.float32(255))
    assert np.array_equal(PROFILES['uint8'].from_model(model), stored)


@pytest.mark.parametrize('name', ['sentinel2_l2a', 'landsat_c2_l2'])
def test_reflectance_profiles_have_a_data_range_of_one_and_round_trip_dn(name):
    rad = Radiometry.resolve(name)
    lo, hi = rad.valid_range
    rng = np.random.default_rng(0)
    stored = rng.integers(int(lo), int(hi) + 1, size=(9, 7, 4)).astype(np.uint16)
    stored[2, 3] = 0  # nodata in every band
    mask = rad.valid_mask(stored)
    assert mask.sum() == stored.shape[0] * stored.shape[1] - 1 and not mask[2, 3]
    np.testing.assert_allclose(rad.data_range(4), 1.0, atol=1e-4)
    back = rad.from_model(rad.to_model(stored), mask)
    assert back.dtype == np.uint16 and np.array_equal(back, stored)


def test_sentinel2_reflectance_formula():
    rad = Radiometry.resolve('sentinel2_l2a')
    stored = np.array([[[1000, 11000, 3500, 6000]]], dtype=np.uint16)
    np.testing.assert_allclose(rad.to_model(stored)[0, 0], [0.0, 1.0, 0.25, 0.5], atol=1e-6)
    assert rad.band_mtf(4) == [0.26, 0.28, 0.24, 0.26]


def test_explicit_numbers_profile_override_and_serialisation():
    rad = Radiometry.resolve({'profile': 'sentinel2_l2a', 'band_names': ['B4', 'B3', 'B2', 'B8']})
    assert rad.band_mtf(4) == [0.24, 0.28, 0.26, 0.26]
    assert Radiometry.resolve(rad.to_dict()) == rad
    explicit = Radiometry.resolve({'scale': 0.5, 'offset': [0, 1, 2], 'valid_range': [0, 100], 'nodata': -1})
    np.testing.assert_allclose(explicit.data_range(3), 50.0)
    assert explicit.select([3, 1]).offset == [2, 0]


@pytest.mark.parametrize(
    'spec, message',
    [
        ('sentinel3', 'unknown profile'),
        ({'scale': 'a'}, 'scale'),
        ({'scale': [0]}, 'non-zero'),
        ({'scale': [1], 'valid_range': [5, 1]}, 'low < high'),
        ({'scale': [1], 'valid_range': [0, 10], 'nodata': 0}, 'inside valid_range'),
        ({'scale': [1], 'colour': 1}, 'colour'),
    ],
)
def test_bad_radiometry_is_one_named_line(spec, message):
    with pytest.raises(RadiometryError, match=message) as info:
        Radiometry.resolve(spec, where='opt.yml: radiometry')
    assert '\n' not in str(info.value)


def test_per_band_count_mismatch_is_named():
    rad = Radiometry.resolve({'scale': [1, 2], 'valid_range': [0, 9]})
    with pytest.raises(RadiometryError, match='2 values but the image has 3 bands'):
        rad.to_model(np.zeros((2, 2, 3), np.uint8))


def test_fill_invalid_keeps_valid_pixels_and_copies_nearest():
    model = np.arange(5 * 5 * 2, dtype=np.float32).reshape(5, 5, 2)
    mask = np.ones((5, 5), bool)
    mask[:, 3:] = False
    filled = fill_invalid(model, mask)
    assert np.array_equal(filled[:, :3], model[:, :3])
    assert np.array_equal(filled[:, 3], model[:, 2]) and np.array_equal(filled[:, 4], model[:, 2])
