"""N-band paired data: GeoTIFF and 16-bit PNG tiles in model values, LMDB packing without loss, RGB unchanged."""

import gc

import cv2
import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import rssr_data  # noqa: F401
from rssr_data.synthetic import write_lr_scene, write_scene
from rssr_utils.image_io import ImageError, decode_bands, encode_npy, read_bands
from rssr_utils.radiometry import PROFILES
from tests.helpers.data import call_script, dataset, make_scenes

S2 = PROFILES['sentinel2_l2a']


@pytest.fixture(scope='module')
def tiles(tmp_path_factory):
    """HR/forest/t<i>.tif: four 64^2 4-band uint16 GeoTIFF tiles of a scene (one with nodata), LR_x4 by block means."""
    root = tmp_path_factory.mktemp('tiles')
    scene = write_scene(str(root / 'scene.tif'), (128, 128), seed=2, nodata_fraction=0.1)
    (root / 'HR' / 'forest').mkdir(parents=True)
    with rasterio.open(scene) as src:
        profile = dict(src.profile, width=64, height=64, blockxsize=32, blockysize=32)
        for i in range(4):
            window = Window(64 * (i % 2), 64 * (i // 2), 64, 64)
            profile['transform'] = src.window_transform(window)
            with rasterio.open(root / 'HR' / 'forest' / f't{i}.tif', 'w', **profile) as dst:
                dst.write(src.read(window=window))
    (root / 'LR' / 'forest').mkdir(parents=True)
    for i in range(4):
        write_lr_scene(str(root / 'HR' / 'forest' / f't{i}.tif'), str(root / 'LR' / 'forest' / f't{i}.tif'), 4)
    return root


def test_geotiff_tiles_are_read_in_model_values_with_bands_and_mask(tiles):
    ds = dataset(dataroot_gt=str(tiles / 'HR'), dataroot_lq=str(tiles / 'LR'), scale=4, radiometry='sentinel2_l2a')
    picked = dataset(dataroot_gt=str(tiles / 'HR'), dataroot_lq=str(tiles / 'LR'), scale=4, bands=[4, 1])
    for index in range(4):
        item = ds[index]
        stored = read_bands(tiles / 'HR' / 'forest' / f't{index}.tif')
        valid = (stored != 0).all(axis=2)
        gt = item['gt'].numpy().transpose(1, 2, 0)
        np.testing.assert_array_equal(gt[valid], S2.to_model(stored)[valid])
        np.testing.assert_array_equal(item['mask'][0].numpy(), valid.astype(np.float32))
        assert item['lq'].shape == (4, 16, 16) and np.isfinite(gt).all() and gt.min() >= 0
        # Without a radiometry, bands alone read N bands with the uint16 profile (stored / 65535).
        expected = PROFILES['uint16'].to_model(stored[..., [3, 0]])
        np.testing.assert_array_equal(picked[index]['gt'].numpy().transpose(1, 2, 0)[valid], expected[valid])
    assert not ds[0]['mask'].all() and ds[3]['mask'].all()  # the nodata edge lies in the first tile
    train = dataset(
        dataroot_gt=str(tiles / 'HR'), scale=4, lq_from_gt=True, radiometry='sentinel2_l2a', phase='train', gt_size=32
    )
    item = train[1]
    assert item['gt'].shape == (4, 32, 32) and item['lq'].shape == (4, 8, 8) and item['mask'].shape == (1, 32, 32)


def test_npy_lmdb_is_lossless_and_read_like_the_folder(tiles, tmp_path):
    out = tmp_path / 'HR.lmdb'
    proc = call_script('create_lmdb.py', '--input', tiles / 'HR', '--output', out, '--format', 'npy', '--verify')
    assert proc.returncode == 0, proc.stderr
    assert (out / 'meta_info.txt').read_text().splitlines()[0] == 'forest/t0.npy (64,64,4) 1'
    folder = dataset(dataroot_gt=str(tiles / 'HR'), scale=4, lq_from_gt=True, radiometry='sentinel2_l2a')
    packed = dataset(
        dataroot_gt=str(out), scale=4, lq_from_gt=True, radiometry='sentinel2_l2a', io_backend={'type': 'lmdb'}
    )
    for a, b in zip(folder, packed):
        assert all(torch.equal(a[k], b[k]) for k in ('gt', 'lq', 'mask'))
    del packed  # an LMDB opens once per process
    gc.collect()
    rgb = dataset(dataroot_gt=str(out), scale=4, lq_from_gt=True, io_backend={'type': 'lmdb'})
    with pytest.raises(ImageError, match='holds an N-band array; set radiometry'):
        rgb[0]


def test_sixteen_bit_png_bands_come_in_file_order(tmp_path):
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 65536, size=(8, 6, 4), dtype=np.uint16)  # R, G, B, NIR as GDAL numbers them
    cv2.imwrite(str(tmp_path / 'x.png'), bands[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    assert np.array_equal(read_bands(tmp_path / 'x.png'), bands)
    many = rng.random((5, 4, 7)).astype(np.float32)
    assert np.array_equal(decode_bands(encode_npy(many), 'k'), many)
    with pytest.raises(ImageError, match='1 to 16 bands'):
        decode_bands(encode_npy(np.zeros((4, 4, 17), np.uint16)), 'k')


def test_rgb_with_a_declared_uint8_radiometry_is_todays_rgb(tmp_path):
    root = make_scenes(tmp_path / 'rgb', per_class=2)
    today = dataset(dataroot_gt=str(root), scale=4, lq_from_gt=True)
    declared = dataset(dataroot_gt=str(root), scale=4, lq_from_gt=True, radiometry='uint8')
    for a, b in zip(today, declared):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
        assert 'mask' not in a and bool(b['mask'].all())
