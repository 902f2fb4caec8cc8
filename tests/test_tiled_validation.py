"""Tiled validation/testing in RSSRModel (`val.tile`) through BasicSR's real test pipeline (scripts/test.py)."""

import os
import re

import rssr_compat  # noqa: F401

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor, tensor2img

import rssr_arch  # noqa: F401
from rssr_data.prepare import save_lr
from rssr_utils.weights import build_model
from tests.helpers.options import REPO, pytorch_init, run_test_script


def write_split(root, split, scale, lr_sizes, seed=0):
    """HR images (smooth texture + noise) and their MATLAB-bicubic LR under ``root/split/{HR,LR_x<scale>}``."""
    rng = np.random.default_rng(seed)
    for sub in ('HR', f'LR_x{scale}'):
        os.makedirs(root / split / sub, exist_ok=True)
    for i, (h, w) in enumerate(lr_sizes):
        base = cv2.resize(rng.random((h // 2, w // 2, 3)).astype(np.float32), (w * scale, h * scale))
        hr = np.clip((base + 0.1 * rng.standard_normal(base.shape)) * 255, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / split / 'HR' / f'img{i}.png'), hr)
        save_lr(hr, str(root / split / f'LR_x{scale}' / f'img{i}.png'), scale)


def run_test(opt, tmp_path):
    """Run scripts/test.py on ``opt``; return the logged metrics and the saved SR images (BGR uint8)."""
    opt_file = tmp_path / f'{opt["name"]}.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    proc = run_test_script(opt_file, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = tmp_path / 'results' / opt['name']
    log = next(results.glob('*.log')).read_text()
    metrics = {m: float(v) for m, v in re.findall(r'# (\w+): ([\d.]+)', log)}
    images = {p.name.split('_')[0]: cv2.imread(str(p)) for p in sorted(results.glob('visualization/*/*.png'))}
    return metrics, images


def save_checkpoint(network_opt, path, seed=0):
    torch.manual_seed(seed)
    net = pytorch_init(build_model(network_opt))  # MSRResNet's own init (x0.1) would hide seams
    torch.save({'params': net.state_dict()}, path)
    return build_model(network_opt, str(path)).eval()


def test_tiled_equals_whole_image_when_the_receptive_field_fits_the_overlap(tmp_path):
    """MSRResNet with one block sees 5 LR pixels around each output pixel; overlap 24 fades 6 pixels away."""
    scale = 4
    write_split(tmp_path / 'data', 'test', scale, [(44, 58), (37, 29)])
    network = dict(type='MSRResNet', num_feat=8, num_block=1, upscale=scale)
    save_checkpoint(network, tmp_path / 'net.pth')
    opt = dict(
        name='whole',
        model_type='RSSRModel',
        scale=scale,
        num_gpu=0,
        manual_seed=0,
        datasets=dict(
            test_1=dict(
                name='tiny', type='RSSRUCMercedDataset', root=str(tmp_path / 'data'), io_backend=dict(type='disk')
            )
        ),
        network_g=network,
        path=dict(pretrain_network_g=str(tmp_path / 'net.pth'), strict_load_g=True, param_key_g='params'),
        val=dict(save_img=True, suffix='sr', metrics=dict(psnr=dict(type='calculate_psnr', crop_border=scale))),
    )
    whole, whole_images = run_test(opt, tmp_path)
    opt['name'] = 'tiled'
    opt['val']['tile'] = dict(size=32, overlap=24, batch_size=3)  # 2 x 3 and 1 x 1 tiles
    tiled, tiled_images = run_test(opt, tmp_path)
    # Equal in float up to rounding (tests/test_rssr_model.py checks 1e-5); after rounding to 8 bit
    # a value on a .5 boundary may move by 1 (one pixel in 10^5 here), which moves PSNR by ~1e-4 dB.
    assert whole_images.keys() == tiled_images.keys() == {'img0', 'img1'}
    for name, img in whole_images.items():
        diff = np.abs(img.astype(int) - tiled_images[name].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-4, name
    assert tiled['psnr'] == pytest.approx(whole['psnr'], abs=1e-3)


def test_aid_option_file_is_the_official_block_evaluation(tmp_path):
    """options/test_tsfnet_x8_aid.yml (a small TSFNet, tiny AID-like data) equals the authors' test_block loop."""
    with open(REPO / 'options' / 'test_tsfnet_x8_aid.yml') as f:
        opt = yaml.safe_load(f)
    scale, ip = opt['scale'], opt['val']['tile']['size']
    assert (scale, ip, opt['val']['tile']['overlap']) == (8, 32, 0)  # 256x256 HR blocks side by side
    sizes = [(40, 36)]  # LR blocks at rows 0, 8 and columns 0, 4: the last ones moved back inside
    write_split(tmp_path / 'data', 'test', scale, sizes)
    opt['datasets']['test_1']['root'] = str(tmp_path / 'data')
    opt['network_g'].update(num_feat=8, num_block=1)
    net = save_checkpoint(opt['network_g'], tmp_path / 'net.pth')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'net.pth')
    opt['num_gpu'] = 0
    metrics, images = run_test(opt, tmp_path)

    # The official trainer's block loop (trainer.py, test_block), written out here.
    psnrs = []
    for i in range(len(sizes)):
        hr = cv2.imread(str(tmp_path / 'data' / 'test' / 'HR' / f'img{i}.png'))
        lr = img2tensor(cv2.imread(str(tmp_path / 'data' / 'test' / f'LR_x{scale}' / f'img{i}.png')) / 255.0)[None]
        _, _, h, w = lr.shape
        sr = torch.zeros(1, 3, h * scale, w * scale)
        with torch.no_grad():
            for iy in range(0, h, ip):
                iy = min(iy, h - ip)
                for ix in range(0, w, ip):
                    ix = min(ix, w - ip)
                    block = net(lr[..., iy : iy + ip, ix : ix + ip])
                    sr[..., iy * scale : (iy + ip) * scale, ix * scale : (ix + ip) * scale] = block
        sr_img = tensor2img(sr)
        # Blocks run batched in RSSRModel: float rounding may move a rare 8-bit value by 1.
        diff = np.abs(sr_img.astype(int) - images[f'img{i}'].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, f'img{i}'
        psnrs.append(calculate_psnr(sr_img, hr, crop_border=scale))
    assert metrics['psnr'] == pytest.approx(np.mean(psnrs), abs=2e-3)
