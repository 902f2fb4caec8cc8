"""Real-ESRGAN degradations: seeded per image, the stages they claim, the degrade tool and on-the-fly training."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data.degradations import bivariate_Gaussian
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.img_process_util import filter2D
from torch.nn import functional as F

from rssr_apps.degrade import main as degrade_main
from rssr_data.degradation_draws import ConfigError, load_config, sample_for_image
from rssr_data.real_degradations import RealDegradation, SeparableUSMSharp, quantize
from tests.helpers.options import SUBPROCESS_ENV

REPO = Path(__file__).resolve().parents[1]
# Every stage off: what remains is the first blur and the resizes.
QUIET = dict(
    usm_sharpen=False,
    resize_prob=[0, 0, 1],
    resize_prob2=[0, 0, 1],
    noise_prob=0,
    noise_prob2=0,
    jpeg_prob=0,
    jpeg_prob2=0,
    second_blur_prob=0,
    final_sinc_prob=0,
)


def make_images(root, num=4, size=(80, 96), dtype=np.uint8, seed=0, ext='.png'):
    """Smooth random RGB images, in a class sub-folder for half of them."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    for i in range(num):
        folder = root / ('cls' if i % 2 else '')
        folder.mkdir(parents=True, exist_ok=True)
        img = cv2.GaussianBlur(rng.random(size + (3,)), (0, 0), 1.5) * peak
        cv2.imwrite(str(folder / f'img{i:02d}{ext}'), img.astype(dtype))
    return root


def outputs(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def images_of(root):
    return {k: v for k, v in outputs(root).items() if k.endswith(('.png', '.tif'))}


def degrade(hr, cfg, scale, key='k', seed=0):
    draws = sample_for_image(cfg, seed, key)
    return RealDegradation(scale)(hr, [draws]), draws


def test_same_seed_same_bytes_across_runs_workers_and_batches(tmp_path):
    src = make_images(tmp_path / 'HR', num=5)
    args = ['--input', str(src), '--scale', '4', '--seed', '3']
    degrade_main(args + ['--output', str(tmp_path / 'a'), '--batch-size', '1'])
    degrade_main(args + ['--output', str(tmp_path / 'b'), '--batch-size', '3', '--workers', '2'])
    degrade_main(['--input', str(src), '--scale', '4', '--seed', '4', '--output', str(tmp_path / 'c')])
    a, b, c = (images_of(tmp_path / n) for n in 'abc')
    assert sorted(a) == ['cls/img01.png', 'cls/img03.png', 'img00.png', 'img02.png', 'img04.png']
    assert a == b
    assert all(a[k] != c[k] for k in a)  # another seed, other draws for every image
    lr = cv2.imread(str(tmp_path / 'a' / 'img00.png'), cv2.IMREAD_UNCHANGED)
    assert lr.shape == (20, 24, 3) and lr.dtype == np.uint8
    prov = [json.loads((tmp_path / n / 'provenance.json').read_text()) for n in 'ab']
    assert prov[0]['images'] == prov[1]['images'] and set(prov[0]['images']) == {
        'img00',
        'cls/img01',
        'img02',
        'cls/img03',
        'img04',
    }
    record = prov[0]['images']['img00']
    assert {'seed', 'kernels', 'resize1', 'noise1', 'jpeg1', 'resize2', 'noise2', 'jpeg2', 'final'} <= set(record)
    assert prov[0]['settings']['config']['noise_range'] == [1, 30] and prov[0]['versions']['basicsr']
    assert not list((tmp_path / 'a').glob('.provenance*'))


def test_draws_depend_on_seed_and_key_only():
    cfg = load_config()
    first = sample_for_image(cfg, 0, 'forest/f01')
    np.random.seed(123)  # the global state neither feeds nor is changed by the draws
    state = np.random.get_state()[1].copy()
    again = sample_for_image(cfg, 0, 'forest/f01')
    assert np.array_equal(np.random.get_state()[1], state)
    assert all(np.array_equal(first[k], again[k]) for k in first if isinstance(first[k], np.ndarray))
    assert all(first[k] == again[k] for k in first if not isinstance(first[k], np.ndarray))
    assert sample_for_image(cfg, 0, 'forest/f02')['resize1'] != first['resize1']


def test_fixed_kernel_without_noise_and_jpeg_is_filter2d_then_resize():
    cfg = load_config(
        dict(
            QUIET,
            kernel_list=['iso'],
            kernel_prob=[1],
            kernel_range=[21, 21],
            sinc_prob=0,
            blur_sigma=[2.0, 2.0 + 1e-9],
            resize_modes=['bicubic'],
        )
    )
    img = cv2.GaussianBlur(np.random.default_rng(0).random((64, 48, 3)), (0, 0), 1).astype(np.float32)
    hr = torch.from_numpy(img).permute(2, 0, 1)[None]
    out, draws = degrade(hr, cfg, 4)
    kernel = torch.from_numpy(draws['kernel1'])[None]
    np.testing.assert_allclose(draws['kernel1'], bivariate_Gaussian(21, 2, 2, 0, isotropic=True), atol=1e-6)
    expected = F.interpolate(filter2D(hr, kernel).clamp(0, 1), size=(16, 12), mode='bicubic').clamp(0, 1)
    assert torch.equal(quantize(out), quantize(expected))
    # with the FAT layout (halving first, one resize at the end) the same image comes out
    fat = load_config(dict(cfg, mid_downscale=2, resize2_power=2, final_resize_last=True))
    out_fat, _ = degrade(hr, fat, 4)
    half = F.interpolate(filter2D(hr, kernel).clamp(0, 1), size=(32, 24), mode='bicubic')
    assert torch.equal(quantize(out_fat), quantize(F.interpolate(half, size=(16, 12), mode='bicubic').clamp(0, 1)))


@pytest.mark.parametrize('quality', [35, 90])
def test_jpeg_only_is_diffjpeg_at_that_quality(quality):
    cfg = load_config(dict(QUIET, blur_prob=0, jpeg_prob=1, jpeg_range=[quality, quality]))
    hr = torch.rand(1, 3, 40, 56)
    out, draws = degrade(hr, cfg, 1)
    assert draws['jpeg1'] == quality
    expected = DiffJPEG(differentiable=False)(hr, quality=torch.tensor([float(quality)]))
    assert torch.equal(quantize(out), quantize(expected))
    assert not torch.equal(quantize(out), quantize(hr))


def test_gaussian_noise_has_the_drawn_sigma():
    cfg = load_config(
        dict(QUIET, blur_prob=0, noise_prob=1, gaussian_noise_prob=1, noise_range=[20, 20], gray_noise_prob=0)
    )
    hr = torch.full((1, 3, 128, 128), 0.5)
    out, draws = degrade(hr, cfg, 1)
    assert draws['noise1_type'] == 'gaussian' and draws['noise1_strength'] == 20
    assert abs((out - hr).std().item() * 255 / 20 - 1) < 0.03


def test_separable_usm_matches_basicsr():
    img = torch.rand(2, 3, 60, 70)
    assert (SeparableUSMSharp()(img) - USMSharp()(img)).abs().max() < 1e-4


def test_presets_and_config_errors(tmp_path):
    fat = load_config('fat')
    assert fat['jpeg_range'] == [80, 95] and fat['mid_downscale'] == 2 and fat['sinc_prob'] == 0.1
    path = tmp_path / 'd.yml'
    path.write_text(yaml.safe_dump({'preset': 'fat', 'noise_range': [1, 8]}))
    assert load_config(str(path))['noise_range'] == [1, 8] and load_config(str(path))['jpeg_range'] == [80, 95]
    path.write_text(yaml.safe_dump({'noise_rnage': [1, 8]}))
    with pytest.raises(ConfigError, match=r'd.yml: noise_rnage: unknown key'):
        load_config(str(path))
    with pytest.raises(ConfigError, match='gaussian_noise_prob'):
        load_config({'gaussian_noise_prob': 2})


def test_16_bit_stays_16_bit_and_tiff_works(tmp_path):
    src = make_images(tmp_path / 'HR', num=2, dtype=np.uint16, ext='.tif')
    degrade_main(['--input', str(src), '--output', str(tmp_path / 'LR'), '--scale', '2', '--config', 'fat'])
    lr = cv2.imread(str(tmp_path / 'LR' / 'img00.tif'), cv2.IMREAD_UNCHANGED)
    assert lr.dtype == np.uint16 and lr.shape == (40, 48, 3)
    assert np.any(lr % 257)  # not 8-bit values stretched to 16 bits


def test_lmdb_in_and_out_match_folders(tmp_path):
    from rssr_utils.image_io import scan_images
    from rssr_utils.lmdb_util import write_lmdb

    src = make_images(tmp_path / 'HR', num=3)
    write_lmdb(str(src), scan_images(str(src)), str(tmp_path / 'HR.lmdb'))
    degrade_main(['--input', str(src), '--output', str(tmp_path / 'LR'), '--scale', '4'])
    degrade_main(['--input', str(tmp_path / 'HR.lmdb'), '--output', str(tmp_path / 'LR.lmdb'), '--scale', '4'])
    assert (tmp_path / 'LR.lmdb' / 'provenance.json').is_file() and not (tmp_path / 'LR.lmdb.staging').exists()
    packed = outputs(tmp_path / 'LR.lmdb')
    degrade_main(
        ['--input', str(tmp_path / 'HR.lmdb'), '--output', str(tmp_path / 'LR.lmdb'), '--scale', '4', '--resume']
    )
    assert outputs(tmp_path / 'LR.lmdb') == packed  # finished: nothing to do
    assert 'LR.lmdb exists' in refused('--input', tmp_path / 'HR.lmdb', '--output', tmp_path / 'LR.lmdb', '--scale', 4)
    import lmdb

    env = lmdb.open(str(tmp_path / 'LR.lmdb'), readonly=True, lock=False)
    with env.begin() as txn:
        for rel in ('img00.png', 'cls/img01.png'):
            packed = cv2.imdecode(np.frombuffer(txn.get(rel[:-4].encode()), np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(packed, cv2.imread(str(tmp_path / 'LR' / rel), cv2.IMREAD_UNCHANGED))
    env.close()


def refused(*args):
    """The message of a degrade run that must fail."""
    with pytest.raises(SystemExit) as error:
        degrade_main([str(a) for a in args])
    return str(error.value.code)


def test_interrupted_run_resumes_to_the_same_bytes(tmp_path):
    src = make_images(tmp_path / 'HR', num=10, size=(96, 96))
    args = ['--input', src, '--scale', '4', '--batch-size', '1']
    degrade_main([str(a) for a in args] + ['--output', str(tmp_path / 'whole')])
    out = tmp_path / 'cut'
    proc = subprocess.Popen(
        [sys.executable, str(REPO / 'scripts' / 'degrade.py'), *map(str, args), '--output', str(out)],
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(images_of(out) if out.is_dir() else []) < 2:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(images_of(out))
    assert 2 <= done < 10, done  # killed midway
    assert not (out / 'provenance.json').exists()  # an unfinished run does not look finished
    message = refused(*args, '--output', out)
    assert 'exists' in message and 'pass --resume' in message and len(images_of(out)) == done
    assert 'seed differ' in refused(*args, '--output', out, '--resume', '--seed', 1)
    degrade_main([str(a) for a in args] + ['--output', str(out), '--resume'])
    assert images_of(out) == images_of(tmp_path / 'whole')
    prov = [json.loads((d / 'provenance.json').read_text()) for d in (out, tmp_path / 'whole')]
    assert prov[0]['images'] == prov[1]['images'] and not list(out.rglob('*.tmp*'))


def test_bad_inputs_are_named_and_nothing_is_lost(tmp_path):
    src = make_images(tmp_path / 'HR', num=3)
    (src / 'img03.png').write_bytes(b'not a png')
    args = ['--input', src, '--output', tmp_path / 'LR', '--scale', '4', '--batch-size', '1']
    message = refused(*args)
    assert 'img03.png: not an image format rssr reads' in message and 'rerun with --resume' in message
    assert len(images_of(tmp_path / 'LR')) == 3  # the images before it are kept, for --resume
    (src / 'img03.png').unlink()
    cv2.imwrite(str(src / 'odd.png'), np.zeros((82, 96, 3), np.uint8))
    assert 'odd.png: 82x96 is not divisible by the scale 4' in refused(*args, '--resume')
    cv2.imwrite(str(src / 'odd.png'), np.zeros((40, 96, 3), np.uint8))
    assert 'odd.png: 40x96 is too small' in refused(*args, '--resume')
    (src / 'odd.png').unlink()
    degrade_main([str(a) for a in args] + ['--resume'])
    before = outputs(tmp_path / 'LR')
    assert 'cls/img01.png exists' in refused(*args) and outputs(tmp_path / 'LR') == before
    assert 'nope: cannot be read' in refused(*args, '--overwrite', '--config', 'nope')


def tiny_real_options(root, arch):
    hr = make_images(root / 'HR', num=2, size=(96, 96))
    dataset = dict(
        type='RSRealESRGANDataset',
        dataroot_gt=str(hr),
        io_backend=dict(type='disk'),
        degradation=dict(preset='realesrgan' if arch == 'TSFNet' else 'fat'),
    )
    if arch == 'TSFNet':
        net, scale, train = dict(type='TSFNet', upscale=8, num_feat=8, num_block=1), 8, {}
    else:
        net = dict(type='FAT', upscale=4, embed_dim=16, num_blocks=1, depth=1, num_heads=2, window_size=6)
        scale = 4
        train = dict(local_opt=dict(type='ExtremumVarianceLoss', loss_weight=0.1, value_range=[0, 1]))
    return dict(
        name=f'real_{arch}',
        model_type='RSSRRealModel',
        scale=scale,
        num_gpu=0,
        manual_seed=0,
        gt_usm=True,
        datasets=dict(
            train=dict(
                dataset,
                name='train',
                gt_size=96 if arch == 'TSFNet' else 72,
                use_hflip=True,
                use_rot=True,
                num_worker_per_gpu=1,
                batch_size_per_gpu=2,
                dataset_enlarge_ratio=1,
                prefetch_mode=None,
            ),
            val=dict(dataset, name='val', seed=0),
        ),
        network_g=net,
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=dict(
            optim_g=dict(type='Adam', lr=1e-3),
            scheduler=dict(type='MultiStepLR', milestones=[10], gamma=0.5),
            total_iter=2,
            warmup_iter=-1,
            pixel_opt=dict(type='L1Loss', loss_weight=1.0),
            **train,
        ),
        val=dict(
            val_freq=2,
            save_img=False,
            metrics=dict(psnr=dict(type='calculate_psnr', crop_border=scale, test_y_channel=False)),
        ),
        logger=dict(
            print_freq=1, save_checkpoint_freq=2, use_tb_logger=False, wandb=dict(project=None, resume_id=None)
        ),
        dist_params=dict(backend='gloo', port=29500),
    )


@pytest.mark.parametrize('arch', ['TSFNet', 'FAT'])
def test_tiny_training_with_on_the_fly_degradation(tmp_path, arch):
    opt = tmp_path / 'real.yml'
    opt.write_text(yaml.safe_dump(tiny_real_options(tmp_path, arch)))
    proc = subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', str(opt)],
        cwd=tmp_path,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert re.search(r'iter:\s+2,', log) and '# psnr:' in log
    if arch == 'TSFNet':
        assert 'l_pix_aux1' in log  # the stage-1 output is supervised too
    else:
        assert 'l_local' in log
    assert (tmp_path / 'experiments' / f'real_{arch}' / 'models' / 'net_g_2.pth').is_file()


def test_dataset_draws_and_model_applies(tmp_path):
    from basicsr.data import build_dataset

    from rssr_data.degradation_draws import unbatch

    hr = make_images(tmp_path / 'HR', num=2, size=(96, 96), dtype=np.uint16)
    opt = dict(
        type='RSRealESRGANDataset',
        name='v',
        phase='val',
        scale=4,
        dataroot_gt=str(hr),
        io_backend=dict(type='disk'),
        degradation='fat',
        seed=5,
    )
    item = build_dataset(opt)[0]
    assert item['gt'].shape == (3, 96, 96) and item['degradation']['peak'] == 65535
    again = build_dataset(opt)[0]  # validation draws are fixed by (seed, key)
    assert item['degradation']['resize1'] == again['degradation']['resize1']
    assert item['gt_path'].endswith('cls/img01.png')
    draws = sample_for_image(load_config('fat'), 5, 'cls/img01')
    assert item['degradation']['resize1'] == draws['resize1']
    batch = torch.utils.data.default_collate([item, again])
    lr = RealDegradation(4)(batch['gt'], [unbatch(batch['degradation'], i) for i in range(2)])
    assert lr.shape == (2, 3, 24, 24) and torch.equal(lr[0], lr[1])


def _real_model(gt_usm):
    import rssr_patches

    rssr_patches.import_registries()
    from basicsr.models import build_model

    network = dict(type='TSFNet', upscale=4, num_feat=8, num_block=1)
    opt = dict(model_type='RSSRRealModel', scale=4, num_gpu=0, is_train=False, dist=False, gt_usm=gt_usm)
    return build_model(dict(opt, network_g=network, path=dict(pretrain_network_g=None)))


def test_gt_usm_sharpens_the_target_once_and_must_be_a_boolean(monkeypatch):
    from rssr_utils.options import OptionError

    torch.manual_seed(0)
    gt = torch.rand(2, 3, 64, 64)
    draws = [sample_for_image(load_config('fat'), 5, f'img{i}') for i in range(2)]  # fat: every draw sharpens
    for d in draws:  # as the dataset hands them over
        d.pop('info')
        d.update({key: torch.from_numpy(d[key]) for key in ('kernel1', 'kernel2', 'sinc_kernel')}, peak=255.0)
    batch = {'gt': gt, 'degradation': torch.utils.data.default_collate(draws)}
    model = _real_model(True)
    calls = []
    sharpen = model.degrader.usm_sharpener.forward
    monkeypatch.setattr(model.degrader.usm_sharpener, 'forward', lambda img: calls.append(1) or sharpen(img))
    model.feed_data(batch)
    assert len(calls) == 1  # one USM pass serves the target and the degradation's input
    # The target is one pass of BasicSR's 2-D USMSharp (the separable one agrees to 3e-6; float32 sums).
    assert (model.gt - USMSharp()(gt)).abs().max() < 1e-5
    # The LR is the one made from that sharpened HR: the same as degrading with no target sharpening.
    plain = _real_model(False)
    plain.feed_data(batch)
    assert torch.equal(model.lq, plain.lq) and torch.equal(plain.gt, gt)
    for bad in ('true', 1, None):
        with pytest.raises(OptionError, match=rf'gt_usm: {re.escape(repr(bad))} is not a boolean'):
            _real_model(bad)
