"""scripts/benchmark.py: numbers checked against independent computations, outputs, failures, test YAMLs."""

import csv
import glob
import math
import os
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import ARCH_REGISTRY
from torch.nn import functional as F

import rssr_arch  # noqa: F401  (registers RSSRBicubic, before basicsr)
from rssr_apps.benchmark import count_flops, run_benchmark, write_reports
from rssr_apps.benchmark.models import build_benchmark_model, count_parameters, model_spec, super_resolve
from rssr_apps.benchmark.quality import METRICS, SKIMAGE_IMAGES, prepare_dataset
from tests.helpers.options import run_test_script

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HR_SIZE = 96  # generated HR crops: LR 24 at x4, 12 at x8 (multiples of 12, and of 8 at x4)


def _psnr(sr, gt, crop):
    """PSNR of two uint8 images straight from the definition."""
    sr, gt = (img[crop:-crop, crop:-crop].astype(np.float64) for img in (sr, gt))
    return 10 * math.log10(255.0**2 / np.mean((sr - gt) ** 2))


def _luma(bgr):
    """ITU-R BT.601 Y in [16, 235] of a uint8 BGR image (MATLAB rgb2ycbcr)."""
    b, g, r = (bgr[..., i].astype(np.float64) / 255.0 for i in range(3))
    return np.round((65.481 * r + 128.553 * g + 24.966 * b + 16.0)).clip(0, 255)


def _bicubic_sr(lq_bgr, scale):
    return np.clip(np.round(imresize(lq_bgr.astype(np.float64) / 255.0, scale) * 255), 0, 255).astype(np.uint8)


def _skimage_set(root, scale):
    gt_dir, lq_dir = osp.join(root, 'HR'), osp.join(root, f'LR_x{scale}')
    return {
        'generate': 'skimage',
        'hr_size': HR_SIZE,
        'type': 'PairedImageDataset',
        'dataroot_gt': gt_dir,
        'dataroot_lq': lq_dir,
        'io_backend': {'type': 'disk'},
    }


def _options(tmp_path, scale, models, **kwargs):
    opt = {
        'name': f'bench_x{scale}',
        'scale': scale,
        'device': 'cpu',
        'quality': 'trained',
        'cost': {'input_size': [24, 24], 'batch_size': 1, 'warmup': 1, 'runs': 2, 'memory': False},
        'datasets': {'skimage': _skimage_set(str(tmp_path / 'data'), scale)},
        'models': models,
    }
    opt.update(kwargs)
    return opt


def _tiny_edsr(scale):
    return {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': scale}


def _save_checkpoint(network_g, file, key='params'):
    opt = dict(network_g)
    net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
    torch.manual_seed(1)
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    torch.save({key: net.state_dict()}, file)
    return net


def test_bicubic_arch_is_matlab_imresize():
    lq = torch.rand(2, 3, 13, 19, dtype=torch.float64)
    net = ARCH_REGISTRY.get('RSSRBicubic')(upscale=4)
    out = net(lq.float())
    for sr, img in zip(out, lq):
        ref = imresize(img.numpy().transpose(1, 2, 0), 4)
        assert np.abs(sr.numpy().transpose(1, 2, 0) - ref).max() < 1e-5
    assert count_parameters(net) == 0
    # analytic count: 4 taps per output sample, rows (52 x 19) then columns (52 x 76), 3 channels, 2 images
    assert net.analytic_flops((2, 3, 13, 19)) == 2 * 4 * 2 * 3 * (52 * 19 + 52 * 76)


def test_flops_and_params_of_plain_conv_net_match_analytic(tmp_path):
    feat, convs, scale, size = 16, 3, 4, 24
    network_g = {'type': 'SRVGGNetCompact', 'num_feat': feat, 'num_conv': convs, 'upscale': scale}
    result = run_benchmark(_options(tmp_path, scale, [{'name': 'vgg', 'network_g': network_g}], datasets={}))
    row = result['models'][0]
    layers = [(3, feat)] + [(feat, feat)] * convs + [(feat, 3 * scale * scale)]  # (in, out) of each 3x3 conv
    assert row['flops'] == sum(2 * size * size * 9 * cin * cout for cin, cout in layers)
    assert row['macs'] == row['flops'] / 2
    prelu = feat * (convs + 1)
    assert row['params'] == sum(9 * cin * cout + cout for cin, cout in layers) + prelu
    net = ARCH_REGISTRY.get('SRVGGNetCompact')(num_feat=feat, num_conv=convs, upscale=scale)
    assert row['params'] == sum(p.numel() for p in net.parameters())
    assert row['weights'] == 'random init' and row['latency_s'] > 0 and not row['errors']


def test_flop_counter_covers_fft_and_cpu_attention():
    x = torch.rand(2, 4, 16, 8)
    q, k, v = torch.rand(2, 3, 10, 8), torch.rand(2, 3, 12, 8), torch.rand(2, 3, 12, 8)

    def fft_and_attention(_):
        spectrum = torch.fft.rfft2(x)  # real -> complex over 16 x 8 points
        torch.fft.irfft2(spectrum, s=(16, 8))
        torch.fft.fft2(x.to(torch.complex64))
        F.scaled_dot_product_attention(q, k, v)

    total, by_op = count_flops(fft_and_attention, None)
    points, batch = 16 * 8, 2 * 4
    real_fft = 2.5 * batch * points * math.log2(points)
    assert by_op['aten._fft_r2c'] == round(real_fft)
    assert by_op['aten._fft_c2r'] == round(real_fft)
    assert by_op['aten._fft_c2c'] == round(2 * real_fft)
    attention = 2 * (2 * 2 * 3 * 10 * 12 * 8)  # q @ k^T, then weights @ v
    assert by_op['aten._scaled_dot_product_flash_attention_for_cpu'] == attention  # the fused CPU kernel
    assert total == sum(by_op.values())
    # a value width the fused kernel does not take falls back to matmuls, counted by torch itself
    total, by_op = count_flops(lambda _: F.scaled_dot_product_attention(q, k, v[..., :5]), None)
    assert by_op == {'aten.bmm': 2 * 2 * 3 * 10 * 12 * 8 + 2 * 2 * 3 * 10 * 12 * 5}


def test_benchmark_x8_numbers_outputs_and_failures(tmp_path):
    scale = 8
    ckpt = str(tmp_path / 'edsr.pth')
    edsr = _tiny_edsr(scale)
    trained = _save_checkpoint(edsr, ckpt, key='params_ema')
    models = [
        {'name': 'Bicubic', 'network_g': {'type': 'RSSRBicubic', 'upscale': scale}},
        {'name': 'EDSR', 'network_g': edsr, 'pretrain_network_g': ckpt, 'param_key_g': 'params_ema'},
        {'name': 'MSRResNet', 'network_g': {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': scale}},
        {
            'name': 'RRDBNet',
            'network_g': {
                'type': 'RRDBNet',
                'num_in_ch': 3,
                'num_out_ch': 3,
                'scale': scale,
                'num_feat': 8,
                'num_block': 1,
                'num_grow_ch': 4,
            },
        },
        {'name': 'Nothing', 'network_g': {'type': 'NoSuchArch'}},
        {
            'name': 'RCAN',
            'network_g': {
                'type': 'RCAN',
                'num_in_ch': 3,
                'num_out_ch': 3,
                'num_feat': 16,
                'num_group': 1,
                'num_block': 1,
                'upscale': scale,
            },
        },
    ]
    opt = _options(tmp_path, scale, models)
    opt['cost'].update(input_size=[12, 12], memory=True)
    result = run_benchmark(opt, log=lambda *_: None)
    out = write_reports(result, str(tmp_path / 'out'))
    rows = {row['model']: row for row in result['models']}

    # Bicubic against the direct formulas on the generated images
    gt_dir, lq_dir = opt['datasets']['skimage']['dataroot_gt'], opt['datasets']['skimage']['dataroot_lq']
    names = sorted(os.listdir(gt_dir))
    assert names == sorted(f'{n}.png' for n in SKIMAGE_IMAGES)
    from skimage.metrics import structural_similarity

    psnr_rgb, psnr_y, ssim_y = [], [], []
    for name in names:
        gt = cv2.imread(osp.join(gt_dir, name))
        lq = cv2.imread(osp.join(lq_dir, name))
        assert gt.shape == (HR_SIZE, HR_SIZE, 3) and lq.shape == (HR_SIZE // scale, HR_SIZE // scale, 3)
        sr = _bicubic_sr(lq, scale)
        psnr_rgb.append(_psnr(sr, gt, scale))
        psnr_y.append(_psnr(_luma(sr), _luma(gt), scale))
        c = slice(scale, -scale)
        ssim_y.append(
            structural_similarity(
                _luma(sr)[c, c],
                _luma(gt)[c, c],
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
    bicubic = rows['Bicubic']
    assert bicubic['skimage/psnr_rgb'] == pytest.approx(np.mean(psnr_rgb), abs=2e-3)
    assert bicubic['skimage/psnr_y'] == pytest.approx(np.mean(psnr_y), abs=2e-3)
    assert bicubic['skimage/ssim_y'] == pytest.approx(np.mean(ssim_y), abs=1e-3)
    assert bicubic['weights'] == 'parameter-free' and bicubic['params'] == 0
    assert bicubic['flops_method'] == 'analytic'

    # trained EDSR: loaded from params_ema, scored; its params against numel
    edsr_row = rows['EDSR']
    assert edsr_row['weights'] == 'trained' and 'skimage/psnr_rgb' in edsr_row
    assert edsr_row['params'] == sum(p.numel() for p in trained.parameters())
    assert edsr_row['peak_memory_bytes'] >= 3 * 96 * 96 * 4  # at least its SR output
    assert edsr_row['latency_s'] > 0 and edsr_row['flops'] > 0
    # BasicSR's MSRResNet cannot be built for x8 and RRDBNet always outputs x4: reported in their rows
    # (named before anything is allocated: rssr_utils.schema builds it on the meta device first)
    assert any(e.startswith('build: ') and 'MSRResNet cannot be built' in e for e in rows['MSRResNet']['errors'])
    assert any('expected x8' in e for e in rows['RRDBNet']['errors'])
    assert 'flops' not in rows['RRDBNet'] and 'skimage/psnr_rgb' not in rows['RRDBNet']
    assert any('NoSuchArch' in e for e in rows['Nothing']['errors'])
    # untrained RCAN: cost only, marked
    assert rows['RCAN']['weights'] == 'random init' and rows['RCAN']['flops'] > 0
    assert 'skimage/psnr_rgb' not in rows['RCAN']

    with open(osp.join(out, 'per_image.csv')) as f:
        per_image = list(csv.DictReader(f))
    assert len(per_image) == 2 * len(names)  # Bicubic and EDSR
    by_name = {r['image']: float(r['psnr_rgb']) for r in per_image if r['model'] == 'Bicubic'}
    assert [by_name[n] for n in names] == pytest.approx(psnr_rgb, abs=2e-3)
    table = open(osp.join(out, 'summary.md')).read()
    assert '| Bicubic | parameter-free |' in table and '| RCAN | random init |' in table
    assert 'expected x8' in table and 'input 1x3x12x12 (LR) -> 96x96' in table
    plot = cv2.imread(osp.join(out, 'psnr_vs_flops.png'))
    assert plot is not None and plot.shape[0] > 300


def test_lmdb_gives_the_folder_numbers(tmp_path):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    scale = 4
    models = [{'name': 'Bicubic', 'network_g': {'type': 'RSSRBicubic', 'upscale': scale}}]
    folder = _options(tmp_path, scale, models, quality='all')
    prepare_dataset('skimage', folder['datasets']['skimage'], scale)
    lmdb = {'type': 'PairedImageDataset', 'io_backend': {'type': 'lmdb'}}
    for key, src in (('dataroot_gt', 'HR'), ('dataroot_lq', f'LR_x{scale}')):
        names = sorted(os.listdir(tmp_path / 'data' / src))
        lmdb[key] = str(tmp_path / f'{src}.lmdb')
        make_lmdb_from_imgs(
            str(tmp_path / 'data' / src), lmdb[key], names, [osp.splitext(n)[0] for n in names], n_thread=1
        )
    folder['cost']['runs'] = 1
    both = run_benchmark({**folder, 'datasets': {'folder': folder['datasets']['skimage'], 'lmdb': lmdb}})
    per_image = {(r['dataset'], osp.splitext(r['image'])[0]): r for r in both['images']}
    assert len(per_image) == 2 * len(SKIMAGE_IMAGES)
    for name in SKIMAGE_IMAGES:
        for metric in METRICS:  # same pixels, so the same numbers
            assert per_image[('lmdb', name)][metric] == per_image[('folder', name)][metric]


def test_rssr25_samples_x4(samples_dir, tmp_path):
    scale = 4
    dataset = {
        'type': 'PairedImageDataset',
        'dataroot_gt': str(samples_dir / 'train' / 'HR'),
        'dataroot_lq': str(samples_dir / 'train' / 'LR'),
        'io_backend': {'type': 'disk'},
    }
    models = [{'name': 'Bicubic', 'network_g': {'type': 'RSSRBicubic', 'upscale': scale}}]
    result = run_benchmark(_options(tmp_path, scale, models, datasets={'rssr25': dataset}))
    names = sorted(os.listdir(dataset['dataroot_gt']))
    direct = [
        _psnr(
            _bicubic_sr(cv2.imread(osp.join(dataset['dataroot_lq'], n)), scale),
            cv2.imread(osp.join(dataset['dataroot_gt'], n)),
            scale,
        )
        for n in names
    ]
    assert result['models'][0]['rssr25/psnr_rgb'] == pytest.approx(np.mean(direct), abs=2e-3)


@pytest.mark.parametrize('opt_file', sorted(glob.glob(osp.join(REPO, 'options', 'test_*_x[48].yml'))))
def test_option_files_build_and_upscale(opt_file):
    spec = model_spec({'opt': opt_file})
    if spec['network_g']['type'] not in ARCH_REGISTRY:
        pytest.skip(f'{spec["network_g"]["type"]} is not registered yet')
    with open(opt_file) as f:
        scale = yaml.safe_load(f)['scale']
    net, _, _ = build_benchmark_model(spec, load=False)
    with torch.inference_mode():
        out = super_resolve(net, torch.rand(1, 3, 12, 12), scale, spec['pad_multiple'])
    assert out.shape == (1, 3, 12 * scale, 12 * scale)


@pytest.mark.parametrize('scale', [4, 8])
def test_benchmark_option_files_resolve(scale):
    with open(osp.join(REPO, 'options', f'benchmark_x{scale}.yml')) as f:
        opt = yaml.safe_load(f)
    assert opt['scale'] == scale
    cwd = os.getcwd()
    os.chdir(REPO)  # option files use paths relative to the checkout, like BasicSR's
    try:
        specs = [model_spec(entry) for entry in opt['models']]
    finally:
        os.chdir(cwd)
    names = {spec['name'] for spec in specs}
    assert {'Bicubic', 'EDSR', 'RCAN', 'SwinIR', 'TSFNet', 'FAT'} <= names
    for spec in specs:
        assert spec['network_g'].get('upscale', spec['network_g'].get('scale')) == scale


def test_scripts_test_reports_the_benchmark_numbers(tmp_path):
    """options/test_edsr_x4.yml through scripts/test.py gives the EDSR row of the benchmark."""
    scale = 4
    with open(osp.join(REPO, 'options', 'test_edsr_x4.yml')) as f:
        test_opt = yaml.safe_load(f)
    data = _skimage_set(str(tmp_path / 'data'), scale)
    test_opt['datasets']['test_1'].update(dataroot_gt=data['dataroot_gt'], dataroot_lq=data['dataroot_lq'])
    test_opt['network_g'].update(num_feat=8, num_block=1)
    ckpt = str(tmp_path / 'edsr.pth')
    _save_checkpoint(test_opt['network_g'], ckpt)
    test_opt['path']['pretrain_network_g'] = ckpt
    opt_file = tmp_path / 'test_edsr.yml'
    opt_file.write_text(yaml.safe_dump(test_opt))

    opt = _options(tmp_path, scale, [{'name': 'EDSR', 'opt': str(opt_file)}])
    opt['cost']['runs'] = 1
    row = run_benchmark(opt)['models'][0]
    assert row['weights'] == 'trained'

    proc = run_test_script(opt_file, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = open(glob.glob(str(tmp_path / 'results' / test_opt['name'] / '*.log'))[0]).read()
    logged = {m: float(v) for m, v in re.findall(r'# (\w+): ([\d.]+)', log)}
    for metric, column in (('psnr', 'psnr_rgb'), ('ssim', 'ssim_rgb'), ('psnr_y', 'psnr_y'), ('ssim_y', 'ssim_y')):
        assert logged[metric] == pytest.approx(row[f'skimage/{column}'], abs=1e-4)
