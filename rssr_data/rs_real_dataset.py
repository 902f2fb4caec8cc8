import random
from os import path as osp

import numpy as np
import torch
from basicsr.data.transforms import augment
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from rssr_utils.image_io import ImageError, path_key

from .degradation_draws import load_config, sample_degradation, sample_for_image
from .degradations import mod_crop
from .real_degradations import check_size
from .rs_paired_dataset import RSPairedDataset


@DATASET_REGISTRY.register()
class RSRealESRGANDataset(RSPairedDataset):
    """HR remote-sensing images with Real-ESRGAN degradations drawn for them; the model makes the LR.

    The pair of BasicSR's ``RealESRGANDataset`` for :class:`~rssr_model.rssr_real_model.RSSRRealModel`:
    this dataset reads the HR (folder or LMDB, 8/16-bit, splits as
    :class:`~rssr_data.rs_paired_dataset.RSPairedDataset`), mod-crops it to the
    scale, crops ``gt_size`` and flips/rotates it in training, and draws every
    random choice of its degradation (:func:`~rssr_data.degradation_draws.sample_degradation`:
    kernels, resize factors, noise, JPEG); the model applies them on its device
    (:class:`~rssr_data.real_degradations.RealDegradation`). Differences from
    Real-ESRGAN: the crop is taken before degrading (no 400-pixel crop-or-pad),
    and each image gets its own resize factors.

    Training draws come from the worker's global RNGs, which BasicSR seeds from
    ``manual_seed``. Validation/test draws come from (``seed``, the image's key),
    so every validation sees the same LR images.

    Args:
        opt (dict): The keys of :class:`RSPairedDataset` except ``dataroot_lq``,
            ``filename_tmpl`` and ``lq_from_gt``, and:
            degradation (str | dict): A preset name (``realesrgan``, ``fat``), a
                YAML file, or a dict of :data:`~rssr_data.degradation_draws.DEFAULTS`'
                keys with an optional base ``preset``. Default: realesrgan.
            seed (int): Seed of the validation/test draws. Default: 0.
    """

    EXTRA_KEYS = frozenset({'degradation', 'seed'})

    def __init__(self, opt):
        opt = dict(opt)
        self.cfg = load_config(opt.pop('degradation', None), f'dataset {opt.get("name", "")!r}: degradation')
        self.seed = opt.pop('seed', 0)
        opt['lq_from_gt'] = True
        super().__init__(opt)
        gt_size = opt.get('gt_size')
        if opt['phase'] == 'train' and (not gt_size or gt_size % self.scale):
            raise KeyError(f'dataset {opt.get("name", "")!r}: gt_size ({gt_size}) must be a multiple of scale.')

    def _key(self, gt_path):
        if self.io_opt.get('db_paths'):
            return gt_path
        return path_key(osp.relpath(gt_path, self.gt_root))

    def __getitem__(self, index):
        gt_path = self.pairs[index][0]
        img = self._read(gt_path, 'gt', to_float=False)
        peak = np.iinfo(img.dtype).max
        img = mod_crop(img, self.scale).astype(np.float32) / peak
        if self.opt['phase'] == 'train':
            size = self.opt['gt_size']
            h, w = img.shape[:2]
            if h < size or w < size:
                raise ImageError(f'{gt_path}: {h}x{w} is smaller than gt_size {size}; lower gt_size or drop it.')
            top, left = random.randint(0, h - size), random.randint(0, w - size)
            img = augment(img[top : top + size, left : left + size], self.opt['use_hflip'], self.opt['use_rot'])
            draws = sample_degradation(self.cfg)
        else:
            draws = sample_for_image(self.cfg, self.seed, self._key(gt_path))
        check_size(self.cfg, self.scale, img.shape[0], img.shape[1], gt_path)
        draws.pop('info')  # descriptions differ in keys between kernel types: not collatable
        for key in ('kernel1', 'kernel2', 'sinc_kernel'):
            draws[key] = torch.from_numpy(draws[key])
        draws['peak'] = float(peak)
        gt = img2tensor(img, bgr2rgb=True, float32=True)
        return {'gt': gt, 'degradation': draws, 'gt_path': gt_path, 'lq_path': gt_path}
