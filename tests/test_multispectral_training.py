"""4-band Sentinel-2-style training and testing through BasicSR's entry points, on generated GeoTIFF scenes.

The shipped option files (options/*_s2_rgbn.yml) are run as they are, shrunk (tiny networks, a few
iterations, small windows) but with their dataroots, radiometry, datasets and metrics.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

import rssr_patches
from rssr_data.synthetic import write_scene
from rssr_utils.options import load_options
from rssr_utils.weights import build_network, checkpoint_radiometry, load_weights
from tests.helpers.options import REPO, SUBPROCESS_ENV, TINY_NETWORKS, dump

RS_METRICS = ('sam', 'ergas', 'band_psnr', 'band_ssim')


@pytest.fixture(scope='module')
def s2_root(tmp_path_factory):
    """``datasets/s2_synthetic`` as the option files read it: one 128^2 training scene, a 96^2 validation scene
    whose top-left 32-pixel window is all nodata (a wide swath edge)."""
    root = tmp_path_factory.mktemp('s2')
    data = root / 'datasets' / 's2_synthetic'
    write_scene(str(data / 'train' / 'scene_0.tif'), (128, 128), seed=0)
    write_scene(str(data / 'val' / 'scene_val.tif'), (96, 96), seed=1, nodata_fraction=0.45)
    return root


def shrink(option_file, root, network, name, total_iter=2):
    opt = load_options(REPO / 'options' / option_file)
    opt['name'] = name
    opt['num_gpu'] = 0
    scale = opt['scale']
    opt['datasets']['train'].update(gt_size=8 * scale, num_windows=4, batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt['datasets']['val'].update(gt_size=32)
    opt['network_g'] = dict(network, upscale=scale)
    opt['train']['total_iter'] = total_iter
    opt['train']['scheduler']['milestones'] = [total_iter]
    opt['val']['val_freq'] = total_iter
    opt['logger'].update(print_freq=1, save_checkpoint_freq=total_iter, use_tb_logger=False)
    return dump(opt, root / f'{name}.yml')


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f'{args} exited with {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}'
    return proc.stdout + proc.stderr


def logged_metrics(log):
    """{metric: value} of the last validation in a BasicSR log."""
    return {m: float(v) for m, v in re.findall(r'# (\w+): (\S+)\s', log)}


def check_run(root, name, network):
    log = next((root / 'experiments' / name).glob('train_*.log')).read_text()
    metrics = logged_metrics(log)
    assert set(RS_METRICS) <= set(metrics), log[-2000:]
    assert all(np.isfinite(metrics[m]) for m in RS_METRICS), metrics
    assert 0 <= metrics['sam'] < 90 and metrics['ergas'] > 0 and 5 < metrics['band_psnr'] < 80
    assert '1 window(s) without a valid pixel skipped' in log  # the all-nodata window: no NaN, no score
    # The radiometry is saved beside the weights; the weight loader reads only the weights.
    weights = root / 'experiments' / name / 'models' / 'net_g_2.pth'
    assert checkpoint_radiometry(weights)['name'] == 'sentinel2_l2a'
    net = build_network(dict(network, num_in_ch=4, num_out_ch=4))
    load_weights(net, weights)
    return metrics


@pytest.mark.slow
def test_fat_s2_option_file_trains_with_basicsr_and_tests_to_uint16_tiffs(s2_root):
    network = dict(TINY_NETWORKS['FAT'], num_in_ch=4, num_out_ch=4)
    opt_file = shrink('train_fat_x4_s2_rgbn.yml', s2_root, network, 'fat_s2')
    run([sys.executable, '-m', 'basicsr.train', '-opt', opt_file], s2_root)
    check_run(s2_root, 'fat_s2', network)
    # The matching test file, through BasicSR's test entry point: uint16 4-band TIFFs of L2A DN.
    test = load_options(REPO / 'options' / 'test_fat_x4_s2_rgbn.yml')
    test.update(name='fat_s2_test', num_gpu=0, network_g=dict(network, upscale=4))
    test['datasets']['test_1']['gt_size'] = 32
    test['path']['pretrain_network_g'] = str(s2_root / 'experiments' / 'fat_s2' / 'models' / 'net_g_2.pth')
    out = run([sys.executable, '-m', 'basicsr.test', '-opt', dump(test, s2_root / 'test.yml')], s2_root)
    assert set(RS_METRICS) <= set(logged_metrics(out))
    tiffs = sorted((s2_root / 'results' / 'fat_s2_test' / 'visualization' / 'S2_synthetic_val').glob('*.tif'))
    assert len(tiffs) == 9
    with rasterio.open(tiffs[0]) as src:  # the all-nodata window: written as nodata
        assert (src.count, src.dtypes[0], src.nodata) == (4, 'uint16', 0) and not src.read().any()
    with rasterio.open(tiffs[-1]) as src, rasterio.open(s2_root / 'datasets/s2_synthetic/val/scene_val.tif') as scene:
        assert src.crs == scene.crs and src.transform == scene.transform * Affine.translation(64, 64)
        dn = src.read()
        assert dn.shape == (4, 32, 32) and dn.min() >= 1000 and dn.max() <= 11000


@pytest.mark.slow
def test_tsfnet_s2_option_file_trains_with_basicsr(s2_root):
    network = dict(TINY_NETWORKS['TSFNet'], num_in_ch=4, num_out_ch=4)
    run(
        [sys.executable, '-m', 'basicsr.train', '-opt', shrink('train_tsfnet_x8_s2_rgbn.yml', s2_root, network, 'tsf')],
        s2_root,
    )
    check_run(s2_root, 'tsf', network)


@pytest.mark.slow
def test_basicsr_edsr_with_four_bands_trains(s2_root):
    network = dict(type='EDSR', num_in_ch=4, num_out_ch=4, num_feat=8, num_block=1, img_range=1.0)
    network['rgb_mean'] = [0.05, 0.07, 0.06, 0.25]
    run(
        [sys.executable, '-m', 'basicsr.train', '-opt', shrink('train_fat_x4_s2_rgbn.yml', s2_root, network, 'edsr')],
        s2_root,
    )
    check_run(s2_root, 'edsr', network)


def test_edsr_and_rcan_take_one_mean_per_band():
    rssr_patches.import_registries()
    net = build_network(dict(type='EDSR', num_in_ch=4, num_out_ch=4, num_feat=8, num_block=1, rgb_mean=[0.1] * 4))
    assert net(torch.rand(1, 4, 6, 6)).shape == (1, 4, 24, 24)
    rcan = dict(type='RCAN', num_in_ch=4, num_out_ch=4, num_feat=16, num_group=1, num_block=1, rgb_mean=[0.2])
    assert build_network(rcan)(torch.rand(1, 4, 6, 6)).shape == (1, 4, 24, 24)
    with pytest.raises(ValueError, match='rgb_mean: EDSR with num_in_ch 4 needs the mean of each band'):
        build_network(dict(type='EDSR', num_in_ch=4, num_out_ch=4, num_feat=8, num_block=1))
    rgb = build_network(dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1))
    assert torch.equal(rgb.mean, torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))
