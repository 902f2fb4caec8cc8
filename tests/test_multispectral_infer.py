"""rssr-infer on N-band scenes with a radiometry: GeoTIFF round trip, exact DN, nodata, seamless tiles, report."""

import json

import numpy as np
import pytest
import torch

import rssr_arch  # noqa: F401  (registers our archs; before basicsr)
from rssr_apps.inference import main
from rssr_arch.bicubic_arch import bicubic_matrix
from rssr_utils.radiometry import Radiometry, fill_invalid

rasterio = pytest.importorskip('rasterio')

MSRRESNET_4 = '{"upscale": 2, "num_in_ch": 4, "num_out_ch": 4, "num_feat": 8, "num_block": 1}'


def bicubic(scale):
    """rssr-infer flags of the parameter-free MATLAB-bicubic arch at ``scale``."""
    return ['--arch', 'RSSRBicubic', '--arch-args', f'{{"upscale": {scale}}}']


def run(*args):
    main([str(a) for a in args] + ['--quiet'])


def write_tif(path, data, nodata=0, crs='EPSG:32633', transform=None):
    from rasterio.transform import from_origin

    count, height, width = data.shape
    with rasterio.open(
        path,
        'w',
        driver='GTiff',
        width=width,
        height=height,
        count=count,
        dtype=data.dtype,
        crs=crs,
        transform=transform or from_origin(399960, 5300040, 10, 10),
        nodata=nodata,
    ) as f:
        f.write(data)
    return path


def synthetic(path, size, seed=0):
    from rssr_data.synthetic import write_scene

    return write_scene(str(path), size, seed=seed, nodata_fraction=0.15)


def test_n_band_geotiff_round_trip_keeps_crs_transform_dtype_and_nodata(tmp_path):
    src = synthetic(tmp_path / 'scene.tif', (60, 84))
    run(
        src,
        tmp_path / 'out',
        *bicubic(2),
        '--tile',
        '24',
        '--overlap',
        '16',
    )
    with rasterio.open(src) as f:
        lr, lr_meta = f.read(), (f.crs, f.transform, f.descriptions)
    with rasterio.open(tmp_path / 'out' / 'scene.tif') as out:
        assert out.count == 3  # no radiometry: today's RGB path
    run(
        src,
        tmp_path / 'ms',
        *bicubic(2),
        '--tile',
        '24',
        '--overlap',
        '16',
        '--radiometry',
        'sentinel2_l2a',
        '--bands',
        '1',
        '2',
        '3',
        '4',
    )
    with rasterio.open(tmp_path / 'ms' / 'scene.tif') as out:
        assert out.count == 4 and out.dtypes == ('uint16',) * 4 and out.nodata == 0
        assert out.crs == lr_meta[0] and out.descriptions == lr_meta[2]
        assert out.transform == lr_meta[1] @ rasterio.Affine.scale(0.5)
        assert Radiometry.resolve(json.loads(out.tags()['RSSR_RADIOMETRY'])).name == 'sentinel2_l2a'
        sr = out.read()
    rad = Radiometry.resolve('sentinel2_l2a')
    mask = rad.valid_mask(lr.transpose(1, 2, 0))
    assert 0 < mask.mean() < 1
    # Nodata stays nodata: the LR mask upsampled by nearest neighbour, in every band; valid pixels are never 0.
    up = mask.repeat(2, 0).repeat(2, 1)
    assert np.array_equal(sr[:, ~up], np.zeros((4, (~up).sum()), np.uint16)) and (sr[:, up] >= 1000).all()
    # Valid pixels: the float64 truth (nearest-valid fill, MATLAB bicubic, back to DN) within 1 DN.
    model = fill_invalid(rad.to_model(lr.transpose(1, 2, 0)).astype(np.float64), mask)
    rows, cols = bicubic_matrix(60, 2).numpy(), bicubic_matrix(84, 2).numpy()
    truth = np.einsum('ij,jkc,lk->ilc', rows, model, cols)
    expected = rad.from_model(truth).transpose(2, 0, 1)
    assert np.abs(sr[:, up].astype(int) - expected[:, up].astype(int)).max() <= 1


def test_bands_select_and_order_the_output(tmp_path):
    src = synthetic(tmp_path / 'scene.tif', (40, 40), seed=2)
    common = [*bicubic(2), '--tile', '16', '--radiometry', 'sentinel2_l2a']
    run(src, tmp_path / 'all', *common, '--overlap', '8')
    run(src, tmp_path / 'two', *common, '--overlap', '8', '--bands', '4', '2')
    with rasterio.open(tmp_path / 'all' / 'scene.tif') as a, rasterio.open(tmp_path / 'two' / 'scene.tif') as b:
        assert a.count == 4 and b.count == 2 and b.descriptions == ('B8', 'B3')
        assert np.array_equal(b.read(), a.read([4, 2]))


@pytest.mark.parametrize('radiometry, value', [('sentinel2_l2a', 3456), ('uint16', 40001), ('landsat_c2_l2', 12345)])
def test_constant_scene_through_bicubic_returns_the_same_dn(tmp_path, radiometry, value):
    data = np.full((4, 37, 53), value, np.uint16)
    nodata = None if radiometry == 'uint16' else 0
    if nodata is not None:
        data[:, 5:9, 10:30] = 0
    src = write_tif(tmp_path / 'flat.tif', data, nodata=nodata)
    run(
        src,
        tmp_path / 'out',
        *bicubic(3),
        '--tile',
        '16',
        '--overlap',
        '8',
    )
    run(
        src,
        tmp_path / 'out',
        '--overwrite',
        *bicubic(3),
        '--tile',
        '16',
        '--overlap',
        '8',
        '--radiometry',
        radiometry,
    )
    with rasterio.open(tmp_path / 'out' / 'flat.tif') as out:
        sr = out.read()
    expected = data.repeat(3, 1).repeat(3, 2)
    assert sr.dtype == np.uint16 and np.array_equal(sr, expected)


def test_64_and_256_pixel_tiles_differ_by_at_most_1_dn(tmp_path):
    src = synthetic(tmp_path / 'scene.tif', (300, 300), seed=3)
    results = []
    for tile in (64, 256):
        out = tmp_path / f'tile{tile}'
        torch.manual_seed(0)  # the same random MSRResNet both times
        run(
            src, out, '--arch', 'MSRResNet', '--arch-args', MSRRESNET_4, '--tile', tile, '--radiometry', 'sentinel2_l2a'
        )
        with rasterio.open(out / 'scene.tif') as f:
            results.append(f.read().astype(int))
    assert results[0].shape == (4, 600, 600)
    assert np.abs(results[0] - results[1]).max() <= 1
    assert (results[0] == 0).any() and len(np.unique(results[0])) > 1000  # nodata kept, real texture


def test_radiometry_errors_are_named_and_leave_nothing(tmp_path, capsys):
    src = write_tif(tmp_path / 'rgb8.tif', np.full((3, 8, 8), 7, np.uint8), nodata=None)
    x2 = bicubic(2)
    with pytest.raises(SystemExit, match='1 of 1 scene'):
        run(src, tmp_path / 'out', *x2, '--radiometry', 'sentinel2_l2a')
    assert 'cannot hold the radiometry' in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--radiometry: unknown profile 'sentinel9'"):
        run(src, tmp_path / 'out', *x2, '--radiometry', 'sentinel9')
    with pytest.raises(SystemExit, match='1 of 1 scene'):
        run(src, tmp_path / 'out', *x2, '--radiometry', 'uint8', '--bands', '1', '5')
    assert 'rgb8.tif: has 3 bands, --bands asks for [1, 5]' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(src, tmp_path / 'out', *x2, '--bands', '1', '2')  # N bands without a radiometry
    assert not list((tmp_path / 'out').glob('*'))
    run(src, tmp_path / 'out', *x2, '--radiometry', '{"scale": 0.5, "valid_range": [0, 200]}')
    with rasterio.open(tmp_path / 'out' / 'rgb8.tif') as out:
        assert out.dtypes == ('uint8',) * 3 and (out.read() == 7).all()


def test_report_prints_and_writes_the_lr_consistency(tmp_path, capsys):
    from rssr_metrics.consistency import lr_consistency

    src = synthetic(tmp_path / 'scene.tif', (64, 64), seed=5)
    x2 = [*bicubic(2), '--tile', '32', '--overlap', '8']
    run(src, tmp_path / 'out', *x2, '--radiometry', 'sentinel2_l2a', '--report')
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith('scene.tif: LR consistency over 1 windows of 64 LR px') and 'spectral_angle' in line
    report = json.loads((tmp_path / 'out' / 'scene.report.json').read_text())
    # The same figures as lr_consistency on the whole (one-window) scene with the Sentinel-2 MTFs.
    rad = Radiometry.resolve('sentinel2_l2a')
    with rasterio.open(src) as f, rasterio.open(tmp_path / 'out' / 'scene.tif') as g:
        lr, sr = f.read().transpose(1, 2, 0), g.read().transpose(1, 2, 0)
    mask = rad.valid_mask(lr)
    lr_model, sr_model = fill_invalid(rad.to_model(lr), mask), fill_invalid(rad.to_model(sr), rad.valid_mask(sr))
    expected = lr_consistency(sr_model, lr_model, 2, mtf=[0.26, 0.28, 0.24, 0.26], mask=mask)
    assert report['windows'] == 1 and report['valid_lr_pixels'] == expected.pop('pixels')
    for key, value in expected.items():
        np.testing.assert_allclose(report['metrics'][key], value, rtol=1e-9)
    assert report['metrics']['reflectance_mae'] < 0.01  # bicubic SR degraded back is close to its LR
    with pytest.raises(SystemExit):
        run(src, tmp_path / 'out2', *x2, '--report')  # no radiometry: no consistency in stored values
