"""rssr-bench on a multispectral test set: SAM/ERGAS/band PSNR/SSIM columns, scene generation, the option file."""

import copy
import csv
from os import path as osp

import numpy as np
import pytest
import yaml
from basicsr.utils.matlab_functions import imresize

import rssr_patches
from rssr_apps.benchmark import markdown_table, run_benchmark, write_reports
from rssr_apps.benchmark.models import build_benchmark_model, model_spec
from rssr_apps.benchmark.quality import prepare_dataset
from rssr_metrics.rs_metric import calculate_ergas, calculate_sam

pytest.importorskip('rasterio')
rssr_patches.import_registries()

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTION_FILE = osp.join(REPO, 'options', 'benchmark_s2_rgbn_x4.yml')
TINY = {
    'EDSR': dict(num_feat=8, num_block=1),
    'FAT': dict(embed_dim=16, num_blocks=1, depth=1, num_heads=2),
}


def small_options(tmp_path):
    """options/benchmark_s2_rgbn_x4.yml with a 128-pixel scene in tmp_path, tiny networks and a quick cost."""
    with open(OPTION_FILE) as f:
        opt = yaml.safe_load(f)
    data = opt['datasets']['s2_synthetic']
    data.update(dataroot_gt=str(tmp_path / 'scenes'), hr_size=128, gt_size=64)
    opt['cost'].update(input_size=[12, 12], runs=1, memory=False)
    for entry in opt['models']:
        entry['network_g'].update(TINY.get(entry['name'], {}))
    return opt


def test_benchmark_lists_bicubic_edsr_and_fat_with_sam_and_ergas(tmp_path):
    opt = small_options(tmp_path)
    result = run_benchmark(opt, log=lambda *_: None)
    assert [row['model'] for row in result['models']] == ['Bicubic', 'EDSR', 'FAT']
    assert result['setup']['metrics'] == ['sam', 'ergas', 'band_psnr', 'band_ssim']
    assert result['setup']['input_shape'] == [1, 4, 12, 12]
    for row in result['models']:
        assert not row['errors'], row['errors']
        assert {f's2_synthetic/{m}' for m in ('sam', 'ergas', 'band_psnr', 'band_ssim')} <= set(row)
    bicubic, fat = result['models'][0], result['models'][2]
    assert fat['s2_synthetic/sam'] > bicubic['s2_synthetic/sam']  # an untrained network is spectrally worse

    # The Bicubic row from the definitions: MATLAB bicubic of each window's LR, SAM and ERGAS with its mask.
    dataset, _ = prepare_dataset('s2_synthetic', opt['datasets']['s2_synthetic'], 4, opt['radiometry'])
    sams, ergases = [], []
    for i in range(len(dataset)):
        data = dataset[i]
        mask = data['mask'][0].numpy() > 0.5
        if not mask.any():
            continue
        lq, gt = (data[k].double().numpy().transpose(1, 2, 0) for k in ('lq', 'gt'))
        sr = imresize(lq, 4)
        sams.append(calculate_sam(sr, gt, 4, mask=mask))
        ergases.append(calculate_ergas(sr, gt, 4, mask=mask, scale=4))
    assert len(sams) == len([im for im in result['images'] if im['model'] == 'Bicubic'])
    np.testing.assert_allclose(bicubic['s2_synthetic/sam'], np.mean(sams), rtol=1e-5)
    np.testing.assert_allclose(bicubic['s2_synthetic/ergas'], np.mean(ergases), rtol=1e-5)

    out = write_reports(result, str(tmp_path / 'report'))
    with open(osp.join(out, 'summary.csv')) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]['s2_synthetic/sam']) == pytest.approx(bicubic['s2_synthetic/sam'])
    table = markdown_table(result)
    assert '| s2_synthetic sam | s2_synthetic ergas |' in table and 'sentinel2_l2a radiometry' in table
    assert osp.isfile(osp.join(out, 'psnr_vs_flops.png'))


def test_synthetic_scene_is_generated_once(tmp_path):
    opt = small_options(tmp_path)
    data = copy.deepcopy(opt['datasets']['s2_synthetic'])
    dataset, note = prepare_dataset('s2', data, 4, 'sentinel2_l2a')
    scene = tmp_path / 'scenes' / 'scene_0.tif'
    assert note == '' and scene.is_file() and len(dataset) == 4  # 128 / 64 = a 2x2 grid of windows
    before = scene.stat().st_mtime_ns
    prepare_dataset('s2', data, 4, 'sentinel2_l2a')
    assert scene.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match='unknown `generate: s3`'):
        prepare_dataset('s2', {**data, 'generate': 's3'}, 4)


def test_the_option_file_builds_its_4_band_models():
    with open(OPTION_FILE) as f:
        opt = yaml.safe_load(f)
    assert opt['radiometry'] == 'sentinel2_l2a' and {'sam', 'ergas'} <= set(opt['metrics'])
    for entry in opt['models']:
        net, _, _ = build_benchmark_model(model_spec(entry), load=False)
        first = next((p for p in net.parameters() if p.dim() == 4), None)
        assert first is None or first.shape[1] == 4  # Bicubic has none; the others take 4 bands


def test_psnr_over_65535_is_inflated_by_16_dB_for_sentinel2(tmp_path):
    """scripts/psnr_radiometry.py (the figures of docs/multispectral.md) on an SR/HR pair with nodata."""
    import re

    import rasterio

    from rssr_data.synthetic import write_scene
    from tests.helpers.data import call_script

    hr_path = write_scene(str(tmp_path / 'hr.tif'), (64, 64), seed=6, nodata_fraction=0.2)
    with rasterio.open(hr_path) as f:
        hr, profile = f.read(), f.profile
    rng = np.random.default_rng(0)
    sr = np.clip(hr.astype(int) + rng.integers(-150, 151, hr.shape), 1000, 11000).astype(np.uint16)
    sr[hr == 0] = 0
    with rasterio.open(tmp_path / 'sr.tif', 'w', **profile) as f:
        f.write(sr)
    done = call_script('psnr_radiometry.py', tmp_path / 'sr.tif', hr_path, '--radiometry', 'sentinel2_l2a')
    assert done.returncode == 0, done.stderr
    declared, divided = (float(v) for v in re.findall(r'(\d+\.\d+) dB', done.stdout)[:2])
    # Truth from the definition: per-band MSE in reflectance over valid pixels, peak 1.0 (1 reflectance unit).
    valid = (hr != 0).all(axis=0)
    mse = [np.mean(((sr[b][valid].astype(float) - hr[b][valid]) / 10000) ** 2) for b in range(4)]
    assert declared == pytest.approx(np.mean([10 * np.log10(1 / m) for m in mse]), abs=0.006)
    assert divided - declared == pytest.approx(20 * np.log10(65535 / 10000), abs=0.011)  # 16.33 dB
    assert 'expected +16.33' in done.stdout
