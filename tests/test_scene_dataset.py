"""RSSceneDataset on generated Sentinel-2-like GeoTIFF scenes: windows, nodata, geotransform pairing, memory."""

import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from basicsr.data import build_dataset
from rasterio.windows import Window

import rssr_data  # noqa: F401
from rssr_data.degradations import bicubic_lr
from rssr_data.synthetic import write_lr_scene, write_scene
from rssr_utils.radiometry import PROFILES
from tests.helpers.options import SUBPROCESS_ENV

S2 = PROFILES['sentinel2_l2a']


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    hr = write_scene(str(root / 'hr.tif'), (256, 320), seed=1, nodata_fraction=0.15)
    lr = write_lr_scene(hr, str(root / 'lr_x4.tif'), 4, offset=(3, 5))
    return root, hr, lr


def scene_dataset(**opt):
    opt = {'type': 'RSSceneDataset', 'name': 's', 'phase': 'train', 'scale': 4, 'gt_size': 32, **opt}
    opt.setdefault('radiometry', 'sentinel2_l2a')
    return build_dataset(opt)


def read_window(path, top, left, size, bands=(1, 2, 3, 4)):
    with rasterio.open(path) as src:
        return src.read(list(bands), window=Window(left, top, size, size)).transpose(1, 2, 0)


def test_training_windows_are_the_scene_in_model_values_with_bicubic_lr(scenes):
    _, hr, _ = scenes
    ds = scene_dataset(dataroot_gt=hr, num_windows=7)
    assert len(ds) == 7
    for index in range(len(ds)):
        item = ds[index]
        top, left = item['window'].tolist()
        stored = read_window(hr, top, left, 32)
        assert (stored != 0).all()  # max_nodata 0: no nodata pixel in a training window
        expected = S2.to_model(stored)
        assert torch.equal(item['gt'], torch.from_numpy(expected.transpose(2, 0, 1)))
        assert torch.equal(item['lq'], torch.from_numpy(bicubic_lr(expected, 4, (0.0, 1.0)).transpose(2, 0, 1)))
        assert item['mask'].shape == (1, 32, 32) and bool(item['mask'].all())
        assert item['gt_path'] == item['lq_path'] == hr


def test_bands_select_and_order_like_gdal(scenes):
    _, hr, _ = scenes
    item = scene_dataset(dataroot_gt=hr, bands=[4, 1], phase='val')[9]
    top, left = item['window'].tolist()
    stored = read_window(hr, top, left, 32, bands=(4, 1))
    assert item['gt'].shape == (2, 32, 32)
    np.testing.assert_array_equal(item['gt'].numpy(), S2.to_model(stored).transpose(2, 0, 1))
    # Sensor LR: each band keeps its own MTF (B2, B3, B4, B8 by default for a 4-band Sentinel-2 file).
    assert scene_dataset(dataroot_gt=hr, bands=[3, 2, 1, 4], lr='sensor').mtf[0] == [0.24, 0.28, 0.26, 0.26]
    assert scene_dataset(dataroot_gt=hr, bands=[4], lr='sensor').mtf[0] == [0.26]
    with pytest.raises(ValueError, match=r'bands \[5\] do not exist; it has bands 1 to 4'):
        scene_dataset(dataroot_gt=hr, bands=[1, 5])


def test_same_index_same_window_across_instances_and_workers(scenes):
    _, hr, _ = scenes
    opt = dict(dataroot_gt=hr, num_windows=4, use_hflip=True, use_rot=True, noise=0.01, seed=3)
    a, b = scene_dataset(**opt), scene_dataset(**opt)
    for index in range(4):
        x, y = a[index], b[index]
        assert all(torch.equal(x[k], y[k]) for k in ('gt', 'lq', 'window'))
    assert not torch.equal(a[0]['gt'], a[1]['gt'])
    assert not torch.equal(a[0]['gt'], scene_dataset(**dict(opt, seed=4))[0]['gt'])
    loaded = list(torch.utils.data.DataLoader(a, batch_size=2, num_workers=2))
    assert torch.equal(loaded[1]['lq'][1], a[3]['lq'])


def test_nodata_is_filled_masked_and_rejected(scenes, tmp_path):
    _, hr, _ = scenes
    val = scene_dataset(dataroot_gt=hr, phase='val')
    assert len(val) == (256 // 32) * (320 // 32)  # the grid, nodata windows included
    masks = [float(val[i]['mask'].mean()) for i in range(len(val))]
    partial = next(i for i, m in enumerate(masks) if 0 < m < 1)
    assert min(masks) == 0 and max(masks) == 1
    item = val[partial]
    stored = read_window(hr, *item['window'].tolist(), 32)
    valid = (stored != 0).all(axis=2)
    np.testing.assert_array_equal(item['mask'][0].numpy(), valid.astype(np.float32))
    gt = item['gt'].numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(gt[valid], S2.to_model(stored)[valid])
    assert gt[~valid].min() >= 0  # filled from valid pixels, never the nodata's reflectance of -0.1
    # A training window takes at most max_nodata of nodata.
    loose = scene_dataset(dataroot_gt=hr, max_nodata=0.5, num_windows=20)
    assert min(float(loose[i]['mask'].mean()) for i in range(20)) >= 0.5
    # A scene without a usable window: one line naming it.
    empty = str(tmp_path / 'empty.tif')
    profile = dict(driver='GTiff', height=64, width=64, count=4, dtype='uint16', nodata=0)
    with rasterio.open(empty, 'w', **profile) as dst:
        dst.write(np.zeros((4, 64, 64), np.uint16))
    with pytest.raises(ValueError, match=r'empty\.tif: no 32-pixel window with at most 0% nodata') as info:
        scene_dataset(dataroot_gt=empty)[0]
    assert '\n' not in str(info.value)


def test_real_lr_scenes_are_paired_through_geotransforms(scenes):
    root, hr, lr = scenes
    ds = scene_dataset(dataroot_gt=hr, dataroot_lq=lr, phase='val')
    assert len(ds) > 0
    for index in (0, len(ds) // 2, len(ds) - 1):
        item = ds[index]
        top, left = item['window'].tolist()
        # The LR scene starts 3 x 4 rows and 5 x 4 columns into the HR scene.
        assert (top - 12) % 4 == 0 and (left - 20) % 4 == 0 and top >= 12 and left >= 20
        stored_lr = read_window(lr, (top - 12) // 4, (left - 20) // 4, 8)
        valid = (stored_lr != 0).all(axis=2)
        lq = item['lq'].numpy().transpose(1, 2, 0)
        np.testing.assert_array_equal(lq[valid], S2.to_model(stored_lr)[valid])
        # The LR pixel is the mean of the HR block under it (to the DN).
        hr_mean = torch.nn.functional.avg_pool2d(item['gt'][None], 4)[0].numpy().transpose(1, 2, 0)
        both = valid & (torch.nn.functional.avg_pool2d(item['mask'][None], 4)[0, 0].numpy() == 1)
        np.testing.assert_allclose(lq[both], hr_mean[both], atol=0.6e-4)
    train = scene_dataset(dataroot_gt=hr, dataroot_lq=lr, num_windows=3)
    assert train[2]['lq'].shape == (4, 8, 8) and train[2]['lq_path'] == lr
    with pytest.raises(ValueError, match=r'lr_x4\.tif.* is 4 x 4, not the scale 2'):
        scene_dataset(dataroot_gt=hr, dataroot_lq=lr, scale=2)
    with pytest.raises(ValueError, match='one LR scene per HR scene'):
        scene_dataset(dataroot_gt=[hr, hr], dataroot_lq=lr)


def test_bad_options_are_named(scenes):
    _, hr, _ = scenes
    with pytest.raises(KeyError, match=r"\['gt_sise'\]"):
        scene_dataset(dataroot_gt=hr, gt_sise=3)
    with pytest.raises(ValueError, match='not a multiple of scale'):
        scene_dataset(dataroot_gt=hr, gt_size=30)
    with pytest.raises(FileNotFoundError, match='neither a GeoTIFF nor a folder'):
        scene_dataset(dataroot_gt=hr + '.missing')
    with pytest.raises(ValueError, match="lr: 'nearest'"):
        scene_dataset(dataroot_gt=hr, lr='nearest')


RSS_PROBE = """
import sys
import rssr_data
from basicsr.data import build_dataset


def status_mib(field):
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(field))


ds = build_dataset(dict(type='RSSceneDataset', name='s', phase='train', scale=4, gt_size=256, num_windows=300,
                        dataroot_gt=sys.argv[1], radiometry='sentinel2_l2a', max_nodata=0.5))
start = status_mib('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:  # reset the peak (VmHWM): from here on, what sampling takes
    f.write('5')
for i in range(len(ds)):
    ds[i]
print(start, status_mib('VmHWM'))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='peak reset through /proc/self/clear_refs')
def test_sampling_windows_never_reads_a_whole_scene(tmp_path):
    # 8192 x 8192 x 4 uint16 is 512 MiB decoded; 300 random 256-pixel windows touch most of its 256-pixel blocks,
    # so reading it whole, or letting GDAL's block cache keep it (5 % of the memory by default), would show.
    # The peak is measured from after the imports (torch and BasicSR alone hold about 1 GiB here), as VmHWM:
    # getrusage's ru_maxrss would also count the forking parent's (pytest's) peak, copied in at exec.
    scene = write_scene(str(tmp_path / 'big.tif'), (8192, 8192), seed=0)
    out = subprocess.run(
        [sys.executable, '-c', RSS_PROBE, scene], capture_output=True, text=True, timeout=900, env=SUBPROCESS_ENV
    )
    assert out.returncode == 0, out.stderr
    start, peak = map(int, out.stdout.split()[-2:])
    assert peak - start < 200, f'sampling raised the peak RSS from {start} to {peak} MiB'
