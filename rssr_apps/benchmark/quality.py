"""Test sets of a benchmark and PSNR/SSIM of a model on them (BasicSR's metrics)."""

import copy
import os
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from rssr_data.prepare import save_lr, write_lr
from rssr_utils.image_io import is_image

from .models import super_resolve

METRICS = ('psnr_rgb', 'ssim_rgb', 'psnr_y', 'ssim_y')
SKIMAGE_IMAGES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'grass', 'gravel', 'brick')


def _center_crop(img, size):
    h, w = img.shape[:2]
    if min(h, w) < size:
        raise ValueError(f'hr_size {size} is larger than an image of the generated set ({h}x{w}); use <= 300.')
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def generate_skimage_set(gt_dir, lq_dir, scale, hr_size=192):
    """Write a small deterministic real-image test set: scikit-image's photographs, centre-cropped.

    ``astronaut``, ``coffee``, ``chelsea``, ``rocket`` (RGB) and the ground textures
    ``grass``, ``gravel``, ``brick`` (grey, repeated to RGB) ship with scikit-image,
    so nothing is downloaded. HR: ``hr_size`` squares; LR: MATLAB bicubic.
    """
    import cv2
    from skimage import data

    from rssr_utils.image_io import write_image

    os.makedirs(gt_dir, exist_ok=True)
    for name in SKIMAGE_IMAGES:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        gt = _center_crop(img, hr_size)
        # Rewritten every time (7 small images), so a changed hr_size never meets stale files.
        gt = cv2.cvtColor(gt, cv2.COLOR_RGB2BGR)
        write_image(osp.join(gt_dir, f'{name}.png'), gt)
        save_lr(gt, osp.join(lq_dir, f'{name}.png'), scale)


def make_lq_folder(gt_dir, lq_dir, scale):
    """Write the missing MATLAB-bicubic LR images of every image file in ``gt_dir``."""
    for name in sorted(n for n in os.listdir(gt_dir) if is_image(n)):
        lq_file = osp.join(lq_dir, osp.splitext(name)[0] + '.png')
        if not osp.isfile(lq_file):
            write_lr(osp.join(gt_dir, name), lq_file, scale)


def prepare_dataset(name, dataset_opt, scale):
    """Build a test set from its option block; return ``(dataset, note)``, dataset None when skipped."""
    from basicsr.data import build_dataset

    opt = copy.deepcopy(dataset_opt)
    optional, generate, hr_size = opt.pop('optional', False), opt.pop('generate', None), opt.pop('hr_size', 192)
    make_lq = opt.pop('make_lq', None)
    opt.setdefault('name', name)
    opt.update(phase='val', scale=scale)
    opt.setdefault('io_backend', {'type': 'disk'})
    if generate == 'skimage':
        generate_skimage_set(opt['dataroot_gt'], opt['dataroot_lq'], scale, hr_size)
    elif generate:
        raise ValueError(f'Dataset {name}: unknown `generate: {generate}` (only `skimage`).')
    if not osp.exists(opt['dataroot_gt']):
        if optional:
            return None, f'{name}: skipped, {opt["dataroot_gt"]} is absent'
        raise FileNotFoundError(
            f'Dataset {name}: dataroot_gt {opt["dataroot_gt"]} not found; fix the path, '
            'or set `optional: true` to skip it.'
        )
    if make_lq == 'bicubic':
        make_lq_folder(opt['dataroot_gt'], opt['dataroot_lq'], scale)
    elif make_lq:
        raise ValueError(f'Dataset {name}: unknown `make_lq: {make_lq}` (only `bicubic`).')
    opt.setdefault('filename_tmpl', '{}')
    return build_dataset(opt), ''


def image_metrics(sr_img, gt_img, crop_border):
    """BasicSR's PSNR and SSIM on RGB and on Y of two uint8 BGR HWC images."""
    result = {}
    for channel, y_only in (('rgb', False), ('y', True)):
        kwargs = dict(crop_border=crop_border, input_order='HWC', test_y_channel=y_only)
        result[f'psnr_{channel}'] = float(calculate_psnr(sr_img, gt_img, **kwargs))
        result[f'ssim_{channel}'] = float(calculate_ssim(sr_img, gt_img, **kwargs))
    return result


def evaluate(net, dataset, scale, device, pad_multiple=None, progress=None):
    """Per-image metrics of ``net`` on ``dataset``: list of dicts with ``image`` and METRICS."""
    rows = []
    with torch.inference_mode():
        for index in range(len(dataset)):
            data = dataset[index]
            sr = super_resolve(net, data['lq'].unsqueeze(0).to(device), scale, pad_multiple)
            row = {'image': osp.basename(str(data.get('lq_path', index)))}
            row.update(image_metrics(tensor2img(sr.cpu()), tensor2img(data['gt']), scale))
            rows.append(row)
            if progress is not None:
                progress.update(1)
    return rows
