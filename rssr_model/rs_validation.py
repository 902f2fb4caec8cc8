"""Validation in model values: N bands, a declared radiometry, nodata masks and remote-sensing metrics.

BasicSR's ``SRModel.nondist_validation`` turns outputs into 8-bit RGB images
(``tensor2img``) before its metrics; that is exact for 8-bit RGB and wrong for
anything else (16-bit data, 4 bands, reflectance). :func:`validate` keeps the
outputs as (H, W, C) float arrays in model values and calls each metric as
BasicSR does (``calculate_metric``), with:

* metrics that take a ``mask`` (the remote-sensing ones: ``calculate_sam``,
  ``calculate_ergas``, ``calculate_band_psnr``, ``calculate_band_ssim``):
  ``img`` (output), ``img2`` (ground truth) in model values, ``mask`` (H, W)
  bool (True = valid, from the data set's ``mask``), ``radiometry`` and
  ``scale``, unless the metric's options set them;
* BasicSR's own metrics (``calculate_psnr``, ``calculate_ssim``, which take
  images in 0-255 and no mask): the model values mapped linearly from the
  radiometry's valid range to 0-255, unrounded, so their PSNR is over the
  valid range too.

A window whose mask holds no valid pixel is skipped (it has no score); the
averages are over the windows scored, and a metric without any is left out of
the log with a warning. ``save_img`` writes each output in stored values
(:meth:`Radiometry.from_model`, nodata where the mask is invalid) as an N-band
TIFF (rasterio), georeferenced on the scene's grid for scene windows.
"""

import inspect
import os
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY

from rssr_metrics.rs_metric import NoValidPixelsError

# The arguments a model-value metric may receive from the model (each only when its options do not set it).
MODEL_VALUE_ARGS = ('mask', 'radiometry', 'scale')


def takes_mask(metric_type):
    """True for metrics that score model values with a mask (signature ``(img, img2, crop_border, mask=None, ...)``)."""
    return 'mask' in inspect.signature(METRIC_REGISTRY.get(metric_type)).parameters


def needs_model_values(opt, radiometry, num_bands):
    """True unless the run is 8-bit RGB scored by BasicSR's own metrics (then SRModel's validation, unchanged)."""
    metrics = (opt.get('val') or {}).get('metrics') or {}
    return (
        radiometry.name != 'uint8' or num_bands not in (None, 3) or any(takes_mask(m['type']) for m in metrics.values())
    )


def _hwc(tensor):
    """(1, C, H, W) tensor -> (H, W, C) float64 array."""
    return tensor[0].detach().cpu().double().numpy().transpose(1, 2, 0)


def _to_255(img, radiometry):
    lo, hi = radiometry.model_range(img.shape[2])
    return (img - lo) / (hi - lo) * 255


def _window_name(val_data):
    name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
    if 'window' in val_data:
        row, col = val_data['window'][0].tolist()
        name = f'{name}_r{row}_c{col}'
    return name


def _georeference(val_data):
    """CRS and transform of a scene window's HR grid (RSSceneDataset samples), else nothing."""
    if 'window' not in val_data:
        return {}
    import rasterio
    from rasterio.windows import Window

    row, col = val_data['window'][0].tolist()
    with rasterio.open(val_data['gt_path'][0]) as src:
        return {'crs': src.crs, 'transform': src.window_transform(Window(col, row, 1, 1))}


def _save(radiometry, sr, mask, path, georeference):
    import rasterio

    stored = radiometry.from_model(sr, mask)
    nodata = radiometry.nodata
    profile = dict(driver='GTiff', height=stored.shape[0], width=stored.shape[1], count=stored.shape[2])
    profile.update(dtype=stored.dtype.name, nodata=nodata, compress='deflate', **georeference)
    os.makedirs(osp.dirname(path), exist_ok=True)
    with rasterio.Env(), rasterio.open(path, 'w', **profile) as dst:
        dst.write(stored.transpose(2, 0, 1))


def _save_path(model, dataset_name, img_name, current_iter):
    opt, folder = model.opt, model.opt['path']['visualization']
    if opt['is_train']:
        return osp.join(folder, img_name, f'{img_name}_{current_iter}.tif')
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(folder, dataset_name, f'{img_name}_{suffix}.tif')


def bands_radiometry(radiometry, num_bands, dataset_opt):
    """The radiometry of ``num_bands`` output bands: per-band lists given for a file's bands follow ``bands``."""
    per_band = max(len(radiometry.scale), len(radiometry.offset))
    bands = dataset_opt.get('bands')
    if per_band not in (1, num_bands) and bands and len(bands) == num_bands:
        return radiometry.select(bands)
    return radiometry  # a mismatch left is named by the radiometry when it is used


def score(metrics, sr, gt, mask, radiometry, scale):
    """{metric name: value} of one window (metrics it cannot score left out); ``mask`` (H, W) bool or None."""
    found = {}
    for name, metric_opt in metrics.items():
        if takes_mask(metric_opt['type']):
            given = {'mask': mask, 'radiometry': radiometry, 'scale': scale}
            data = {'img': sr, 'img2': gt, **{k: v for k, v in given.items() if k not in metric_opt}}
        else:
            data = {'img': _to_255(sr, radiometry), 'img2': _to_255(gt, radiometry)}
        try:
            found[name] = float(calculate_metric(data, metric_opt))
        except NoValidPixelsError:  # e.g. no whole SSIM window on valid pixels: this window has no score
            continue
    return found


def validate(model, dataloader, current_iter, tb_logger, save_img):
    """``nondist_validation`` in model values (see the module docstring) for :class:`RSSRModel`."""
    dataset_name = dataloader.dataset.opt['name']
    metrics = model.opt['val'].get('metrics') or {}
    if metrics:
        model._initialize_best_metric_results(dataset_name)
    sums, counts, skipped = dict.fromkeys(metrics, 0.0), dict.fromkeys(metrics, 0), 0
    for val_data in dataloader:
        img_name = _window_name(val_data)
        model.feed_data(val_data)
        model.test()
        mask = None if model.mask is None else model.mask[0, 0].cpu().numpy() > 0.5
        sr = _hwc(model.output)
        radiometry = bands_radiometry(model.radiometry, sr.shape[2], dataloader.dataset.opt)
        if save_img:
            path = _save_path(model, dataset_name, img_name, current_iter)
            _save(radiometry, sr, mask, path, _georeference(val_data))
        if hasattr(model, 'gt') and metrics:
            if mask is not None and not mask.any():
                skipped += 1
            else:
                for name, value in score(metrics, sr, _hwc(model.gt), mask, radiometry, model.opt['scale']).items():
                    if np.isfinite(value):
                        sums[name] += value
                        counts[name] += 1
        for name in ('gt', 'lq', 'output', 'mask'):
            if hasattr(model, name):
                delattr(model, name)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if not metrics:
        return
    logger = get_root_logger()
    if skipped:
        logger.info(f'Validation {dataset_name}: {skipped} window(s) without a valid pixel skipped.')
    model.metric_results = {}
    for name in metrics:
        if counts[name] == 0:
            logger.warning(f'Validation {dataset_name}: no window could be scored by {name}; it is not logged.')
            continue
        model.metric_results[name] = sums[name] / counts[name]
        model._update_best_metric_result(dataset_name, name, model.metric_results[name], current_iter)
    model._log_validation_metric_values(current_iter, dataset_name, tb_logger)
