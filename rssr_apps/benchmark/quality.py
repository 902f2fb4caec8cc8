"""Test sets of a benchmark and the quality of a model on them.

8-bit RGB (no ``radiometry:`` or ``metrics:`` in the option file): BasicSR's
PSNR/SSIM on RGB and Y (:data:`METRICS`). Multispectral: the option file's
``metrics:`` (default :func:`rs_metrics`: SAM, ERGAS, band PSNR/SSIM) scored
in model values with each window's nodata mask and the radiometry's valid
range, as validation scores them (:func:`rssr_model.rs_validation.score`).
"""

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
RS_METRIC_TYPES = {
    'sam': 'calculate_sam',
    'ergas': 'calculate_ergas',
    'band_psnr': 'calculate_band_psnr',
    'band_ssim': 'calculate_band_ssim',
}


def rs_metrics(opt):
    """The ``metrics:`` of a benchmark option file (name -> metric options, as ``val.metrics``), or None for
    8-bit RGB. With a ``radiometry:`` and no ``metrics:``: SAM, ERGAS, band PSNR and SSIM, border crop = scale."""
    if opt.get('metrics'):
        return dict(opt['metrics'])
    if opt.get('radiometry') is None:
        return None
    return {name: {'type': kind, 'crop_border': opt['scale']} for name, kind in RS_METRIC_TYPES.items()}


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


def generate_s2_scenes(folder, size, count=1, seed=100):
    """Write the missing synthetic Sentinel-2-like scenes ``folder/scene_<i>.tif`` (:mod:`rssr_data.synthetic`).

    Existing scenes are kept (they are a pure function of size and seed), so a run costs nothing the second time.
    """
    from rssr_data.synthetic import write_scene

    for i in range(count):
        path = osp.join(folder, f'scene_{i}.tif')
        if not osp.isfile(path):
            write_scene(path, (size, size), seed=seed + i)


def prepare_dataset(name, dataset_opt, scale, radiometry=None):
    """Build a test set from its option block; return ``(dataset, note)``, dataset None when skipped.

    ``radiometry`` (the option file's) is handed to rssr's scene datasets that do not set their own.
    """
    from basicsr.data import build_dataset

    opt = copy.deepcopy(dataset_opt)
    optional, generate, hr_size = opt.pop('optional', False), opt.pop('generate', None), opt.pop('hr_size', 192)
    make_lq, scenes = opt.pop('make_lq', None), opt.pop('scenes', 1)
    opt.setdefault('name', name)
    opt.update(phase='val', scale=scale)
    scene_dataset = opt.get('type') == 'RSSceneDataset'  # reads GeoTIFFs itself: no io_backend or filename_tmpl
    if scene_dataset and radiometry is not None:
        opt.setdefault('radiometry', radiometry)
    elif not scene_dataset:
        opt.setdefault('io_backend', {'type': 'disk'})
    if generate == 'skimage':
        generate_skimage_set(opt['dataroot_gt'], opt['dataroot_lq'], scale, hr_size)
    elif generate == 's2_synthetic':
        generate_s2_scenes(opt['dataroot_gt'], hr_size, scenes)
    elif generate:
        raise ValueError(f'Dataset {name}: unknown `generate: {generate}` (`skimage` or `s2_synthetic`).')
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
    if not scene_dataset:
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


def model_value_metrics(sr, data, metrics, radiometry, scale, dataset_opt):
    """RS metrics of one window in model values (None when its mask leaves no valid pixel).

    Args:
        sr (Tensor): (1, C, H, W) output.
        data (dict): The dataset's sample: ``gt`` (C, H, W), optional ``mask`` (1, H, W), 1 = valid.
        metrics (dict): name -> metric options (``val.metrics`` style).
        radiometry (str | dict | None): The option file's (valid range of band PSNR/SSIM).
        scale (int): SR factor (ERGAS).
        dataset_opt (dict): The dataset's options (its ``bands`` pick per-band radiometry values).
    """
    from rssr_model.rs_validation import bands_radiometry, score
    from rssr_utils.radiometry import Radiometry

    pred = sr[0].double().cpu().numpy().transpose(1, 2, 0)
    gt = data['gt'].double().numpy().transpose(1, 2, 0)
    mask = data['mask'][0].numpy() > 0.5 if 'mask' in data else None
    if mask is not None and not mask.any():
        return None
    bands = bands_radiometry(Radiometry.resolve(radiometry), gt.shape[2], dataset_opt)
    return score(metrics, pred, gt, mask, bands, scale)


def evaluate(net, dataset, scale, device, pad_multiple=None, progress=None, metrics=None, radiometry=None):
    """Per-image metrics of ``net`` on ``dataset``: list of dicts with ``image`` and METRICS, or with the
    ``metrics`` names (scored in model values, see :func:`model_value_metrics`; windows without a valid
    pixel are left out)."""
    rows = []
    with torch.inference_mode():
        for index in range(len(dataset)):
            data = dataset[index]
            sr = super_resolve(net, data['lq'].unsqueeze(0).to(device), scale, pad_multiple)
            name = osp.basename(str(data.get('lq_path', index)))
            if 'window' in data:
                name = f'{osp.splitext(name)[0]}_r{int(data["window"][0])}_c{int(data["window"][1])}'
            if metrics:
                opt = getattr(dataset, 'opt', {})
                found = model_value_metrics(sr, data, metrics, opt.get('radiometry', radiometry), scale, opt)
            else:
                found = image_metrics(tensor2img(sr.cpu()), tensor2img(data['gt']), scale)
            if found is not None:
                rows.append({'image': name, **found})
            if progress is not None:
                progress.update(1)
    return rows
