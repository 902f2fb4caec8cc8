from os import path as osp

import lmdb
import numpy as np
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from rssr_utils.image_io import NPY_MAGIC, ImageError, decode, decode_bands, read_bytes, scan_images, select_bands
from rssr_utils.lmdb_util import meta_keys
from rssr_utils.radiometry import Radiometry, fill_invalid

from .degradations import bicubic_lr, mod_crop
from .prepare import split_entries

# Keys BasicSR itself puts into (or reads from) every dataset option.
BASICSR_KEYS = {
    'name',
    'type',
    'phase',
    'scale',
    'num_worker_per_gpu',
    'batch_size_per_gpu',
    'dataset_enlarge_ratio',
    'prefetch_mode',
    'pin_memory',
    'persistent_workers',
    'use_shuffle',
    'num_prefetch_queue',
    'color',
    'mean',
    'std',
}
OWN_KEYS = {
    'dataroot_gt',
    'dataroot_lq',
    'io_backend',
    'gt_size',
    'use_hflip',
    'use_rot',
    'filename_tmpl',
    'meta_info_file',
    'lq_from_gt',
    'recursive',
    'bands',
    'radiometry',
}


def refuse_unknown_keys(opt, own_keys, dataset):
    """A KeyError naming the keys of a dataset option that neither ``dataset`` nor BasicSR reads (typos)."""
    unknown = sorted(set(opt) - set(own_keys) - BASICSR_KEYS)
    if unknown:
        raise KeyError(
            f'Unknown dataset option(s) {unknown} for {dataset} {opt.get("name", "")!r}; it reads {sorted(own_keys)}.'
        )


def create_lmdb_command(db_path):
    """The ``scripts/create_lmdb.py`` command that packs ``<folder>.lmdb`` from ``<folder>``."""
    folder = db_path[: -len('.lmdb')] if db_path.endswith('.lmdb') else db_path
    return f'python scripts/create_lmdb.py --input {folder} --output {folder}.lmdb'


@DATASET_REGISTRY.register()
class RSPairedDataset(data.Dataset):
    """Paired HR/LR remote-sensing images, from folders (class sub-folders included) or LMDB.

    Pairs are matched by relative path and file stem: ``HR/forest/forest01.tif``
    pairs with ``LR_x8/forest/forest01.<any image extension>`` (after
    ``filename_tmpl``). With ``lq_from_gt`` the LR image is made on the fly by
    MATLAB-kernel bicubic (``basicsr.utils.matlab_functions.imresize``, the
    papers' ``imresize``) from the HR image mod-cropped to a multiple of the
    scale. An HR image up to ``scale - 1`` pixels larger than ``scale`` x its LR
    is mod-cropped the same way (the MATLAB scripts do); any other size mismatch
    is an error naming both files. Images are read as described in
    :mod:`rssr_utils.image_io` (16-bit scaled by 1/65535, grey repeated to RGB,
    other band counts refused, empty/corrupt/oversized files named). LMDB keys
    are UTF-8 (names with spaces and non-ASCII characters work).

    With ``bands`` or ``radiometry`` (set, or the option file's top-level
    ``radiometry``), images of 1 to 16 bands and any type are read as stored
    (:func:`rssr_utils.image_io.decode_bands`: GeoTIFFs by rasterio, 16-bit
    PNG/TIFF by OpenCV, N-band LMDB values as ``.npy``), in the file's band
    order, mapped to model values by the radiometry, nodata filled with the
    nearest valid pixel; samples then also hold ``mask`` (1, H, W), 1 = valid
    pixel of gt.

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_gt (str): HR folder, or ``.lmdb`` folder. Required.
            dataroot_lq (str): LR folder or ``.lmdb``. Required unless lq_from_gt.
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``. Default: disk.
            scale (int): Upscale factor (BasicSR sets it from the top-level ``scale``). Required.
            phase (str): 'train' crops and augments; other phases return whole images.
            gt_size (int): HR crop size. Required for training.
            use_hflip (bool): Random horizontal flips for training. Default: False.
            use_rot (bool): Random vertical flips and transposes for training. Default: False.
            filename_tmpl (str): LR stem template, e.g. '{}x4'. Default: '{}'.
            meta_info_file (str): Split file listing the HR images to use, one
                relative path per line (all images when absent).
            lq_from_gt (bool): Make LR from HR by MATLAB bicubic. Default: False.
            recursive (bool): Look into sub-folders. Default: True.
            bands (list[int] | None): 1-based bands to read, in this order (as GDAL). Default: all (N-band
                reading when given).
            radiometry (str | dict | None): Stored -> model values (rssr_utils.radiometry; N-band reading when
                given). Default: the option file's top-level radiometry; for N-band reading without one, the
                uint8 or uint16 profile by the file's type.
            Unknown keys are refused, so that typos do not pass silently.
            (rssr_utils.options checks these types and the Required keys at start-up.)
    """

    def __init__(self, opt):
        super().__init__()
        refuse_unknown_keys(opt, OWN_KEYS, type(self).__name__)
        self.opt = opt
        self.scale = opt['scale']
        self.lq_from_gt = opt.get('lq_from_gt', False)
        self.io_opt = dict(opt.get('io_backend', {'type': 'disk'}))
        self.file_client = None
        self.gt_root = opt['dataroot_gt']
        self.lq_root = None if self.lq_from_gt else opt.get('dataroot_lq')
        if not self.lq_from_gt and not self.lq_root:
            raise KeyError('Set dataroot_lq, or lq_from_gt: true to make LR images from HR on the fly.')
        self.pairs = self._lmdb_pairs(opt) if self.io_opt['type'] == 'lmdb' else self._folder_pairs(opt)
        # N-band reading in model values; without bands or radiometry, today's 8/16-bit RGB path, unchanged.
        self.bands = opt.get('bands')
        self.nband = self.bands is not None or opt.get('radiometry') is not None
        self.radiometry = None if opt.get('radiometry') is None else Radiometry.resolve(opt['radiometry'])

    def _folder_pairs(self, opt):
        tmpl = opt.get('filename_tmpl', '{}')
        gt_files = scan_images(self.gt_root, opt.get('recursive', True))
        if opt.get('meta_info_file'):
            wanted = split_entries(opt['meta_info_file'])
            missing = sorted(set(wanted) - set(gt_files))
            if missing:
                raise FileNotFoundError(
                    f'{len(missing)} image(s) listed in {opt["meta_info_file"]} are not under '
                    f'{self.gt_root}, e.g. {missing[:3]}; regenerate the split or fix dataroot_gt.'
                )
            gt_files = wanted
        if self.lq_from_gt:
            return [(osp.join(self.gt_root, f), None) for f in gt_files]
        lq_index = {osp.splitext(f)[0]: f for f in scan_images(self.lq_root, opt.get('recursive', True))}
        pairs, missing = [], []
        for rel in gt_files:
            folder, stem = osp.split(osp.splitext(rel)[0])
            key = osp.join(folder, tmpl.format(stem))
            if key in lq_index:
                pairs.append((osp.join(self.gt_root, rel), osp.join(self.lq_root, lq_index[key])))
            else:
                missing.append(rel)
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} HR image(s) have no LR partner in {self.lq_root} (e.g. {missing[:3]}, looked for '
                f'{tmpl!r}-named files); generate LR with scripts/prepare_dataset.py, fix filename_tmpl, or use '
                'lq_from_gt: true.'
            )
        return pairs

    def _lmdb_pairs(self, opt):
        roots = [self.gt_root] + ([] if self.lq_from_gt else [self.lq_root])
        for key, root in zip(('dataroot_gt', 'dataroot_lq'), roots):
            if not root.endswith('.lmdb'):
                packed = f'{root.rstrip("/")}.lmdb'
                fix = f'use {packed}' if osp.isdir(packed) else f'pack it first: {create_lmdb_command(packed)}'
                raise ValueError(f'io_backend lmdb reads .lmdb databases, but {key} is the folder {root}; {fix}')
            if not osp.isdir(root):
                raise FileNotFoundError(
                    f'LMDB {root} ({key}) does not exist; make it with: {create_lmdb_command(root)} '
                    '(or set io_backend type: disk to read the image folder).'
                )
        self.io_opt['db_paths'] = roots
        self.io_opt['client_keys'] = ['gt', 'lq'][: len(roots)]
        gt_keys = meta_keys(self.gt_root)
        if opt.get('meta_info_file'):
            wanted = [osp.splitext(v)[0] for v in split_entries(opt['meta_info_file'])]
            missing = sorted(set(wanted) - set(gt_keys))
            if missing:
                raise KeyError(f'{len(missing)} split entries are not in {self.gt_root}, e.g. {missing[:3]}.')
            gt_keys = wanted
        if not self.lq_from_gt:
            missing = sorted(set(gt_keys) - set(meta_keys(self.lq_root)))
            if missing:
                raise KeyError(
                    f'{len(missing)} HR key(s) have no LR partner in {self.lq_root}, e.g. {missing[:3]}; '
                    'pack LR and HR from the same file list.'
                )
        return [(key, None if self.lq_from_gt else key) for key in gt_keys]

    def _read(self, path, client_key, to_float=True):
        backend = self.io_opt['type']
        if backend == 'disk':
            return self._decode(read_bytes(path), path, to_float)
        root = self.gt_root if client_key == 'gt' else self.lq_root
        name = f'{root}:{path}' if backend == 'lmdb' else path
        if self.file_client is None:  # opened in the worker process that reads (LMDB handles do not survive fork)
            if backend == 'lmdb':  # keys are UTF-8 (BasicSR's LmdbBackend only encodes ASCII)
                self.file_client = {
                    key: lmdb.open(db, readonly=True, lock=False, readahead=False)
                    for key, db in zip(self.io_opt['client_keys'], self.io_opt['db_paths'])
                }
            else:
                opts = dict(self.io_opt)
                self.file_client = FileClient(opts.pop('type'), **opts)
        try:
            if backend == 'lmdb':
                with self.file_client[client_key].begin(write=False) as txn:
                    content = txn.get(path.encode('utf-8'))
                if content is None:
                    raise KeyError('no such key')
            else:
                content = self.file_client.get(path, client_key)
        except (OSError, KeyError, TypeError, lmdb.Error) as error:
            raise ImageError(f'{name}: cannot be read ({error}); check the file or rebuild the LMDB.') from error
        return self._decode(content, name, to_float)

    def _decode(self, content, name, to_float):
        """RGB path: BGR float [0, 1] (``decode``). N-band path: (model values, nodata filled; valid mask)."""
        if not self.nband:
            if bytes(content[:6]) == NPY_MAGIC:
                raise ImageError(f'{name}: holds an N-band array; set radiometry (and bands) for this dataset.')
            return decode(content, name, to_float)
        stored = select_bands(decode_bands(content, name), self.bands, name)
        radiometry = self.radiometry
        if radiometry is None:
            if stored.dtype not in (np.uint8, np.uint16):
                raise ImageError(f'{name}: {stored.dtype} data needs a radiometry (a profile name or numbers).')
            radiometry = Radiometry.resolve(stored.dtype.name)
        mask = radiometry.valid_mask(stored)
        return fill_invalid(radiometry.to_model(stored), mask), mask

    def __getitem__(self, index):
        if self.nband:
            return self._nband_item(index)
        gt_path, lq_path = self.pairs[index]
        scale = self.scale
        img_gt = self._read(gt_path, 'gt')
        if self.lq_from_gt:
            if min(img_gt.shape[:2]) < scale:
                raise ImageError(
                    f'{gt_path}: is {img_gt.shape[0]}x{img_gt.shape[1]}, smaller than the scale {scale}; remove it.'
                )
            img_gt = mod_crop(img_gt, scale)
            img_lq = bicubic_lr(img_gt, scale)
            lq_path = gt_path
        else:
            img_lq = self._read(lq_path, 'lq')
            h, w = img_lq.shape[:2]
            gh, gw = img_gt.shape[:2]
            if gh // scale != h or gw // scale != w:
                raise ImageError(
                    f'{gt_path} is {gh}x{gw} but its LR {lq_path} is {h}x{w}, not HR/{scale}; '
                    'regenerate the LR (scripts/prepare_dataset.py) or fix scale.'
                )
            img_gt = img_gt[: h * scale, : w * scale]
        if self.opt['phase'] == 'train':
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def _nband_item(self, index):
        """A sample of the N-band path: CHW model values in the file's band order, with the gt ``mask``."""
        gt_path, lq_path = self.pairs[index]
        scale = self.scale
        img_gt, mask = self._read(gt_path, 'gt')
        if self.lq_from_gt:
            if min(img_gt.shape[:2]) < scale:
                raise ImageError(f'{gt_path}: is {img_gt.shape[0]}x{img_gt.shape[1]}, smaller than the scale {scale}.')
            img_gt, mask = mod_crop(img_gt, scale), mod_crop(mask, scale)
            radiometry = self.radiometry or Radiometry.resolve('uint8')  # uint16's model range is also [0, 1]
            img_lq = bicubic_lr(img_gt, scale, radiometry.model_range(img_gt.shape[2]))
            lq_path = gt_path
        else:
            img_lq, lq_mask = self._read(lq_path, 'lq')
            h, w = img_lq.shape[:2]
            if img_gt.shape[0] // scale != h or img_gt.shape[1] // scale != w or img_gt.shape[2] != img_lq.shape[2]:
                raise ImageError(
                    f'{gt_path} is {img_gt.shape} but its LR {lq_path} is {img_lq.shape}, not HR/{scale} with the '
                    'same bands; regenerate the LR or fix scale.'
                )
            img_gt, mask = img_gt[: h * scale, : w * scale], mask[: h * scale, : w * scale]
        # The mask rides along as one more band through BasicSR's crop and flips.
        both = np.concatenate([img_gt, mask[..., None].astype(np.float32)], axis=2)
        if self.opt['phase'] == 'train':
            both, img_lq = paired_random_crop(both, img_lq, self.opt['gt_size'], scale, gt_path)
            both, img_lq = augment([both, img_lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        img_gt, mask, img_lq = both[..., :-1], both[..., -1:], img_lq.reshape(img_lq.shape[:2] + (-1,))
        gt, lq, mask = img2tensor([img_gt, img_lq, mask], bgr2rgb=False, float32=True)
        return {'lq': lq, 'gt': gt, 'mask': mask, 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.pairs)


class _PresetDataset(RSPairedDataset):
    """A data set laid out by scripts/prepare_dataset.py: ``<root>/<phase>/{HR,LR_x<scale>}``.

    ``root`` (str) replaces ``dataroot_gt``/``dataroot_lq``; the other keys are those of
    :class:`RSPairedDataset`. Split folders are named by ``split`` (default: the
    BasicSR phase, with validation sets named 'val*' reading ``val``). With
    ``io_backend: {type: lmdb}`` the databases are ``<root>/<split>/HR.lmdb`` and
    ``<root>/<split>/LR_x<scale>.lmdb``, where scripts/create_lmdb.py puts them.
    """

    GT_SIZE = None

    def __init__(self, opt):
        super().__init__(self.expand_options(opt))

    @classmethod
    def expand_options(cls, opt):
        """The options as :class:`RSPairedDataset` reads them (folders from ``root``, the preset ``gt_size``)."""
        opt = dict(opt)
        split = opt.pop('split', 'val' if opt['phase'].startswith('val') else opt['phase'])
        if 'root' in opt:
            root = opt.pop('root')
            ext = '.lmdb' if opt.get('io_backend', {}).get('type') == 'lmdb' else ''
            opt.setdefault('dataroot_gt', osp.join(root, split, 'HR' + ext))
            if not opt.get('lq_from_gt'):
                opt.setdefault('dataroot_lq', osp.join(root, split, f'LR_x{opt.get("scale")}{ext}'))
        if cls.GT_SIZE and opt['phase'] == 'train':
            opt.setdefault('gt_size', cls.GT_SIZE)
        return opt


@DATASET_REGISTRY.register()
class UCMercedDataset(_PresetDataset):
    """UC Merced land use: 21 classes x 100 RGB .tif tiles of 256x256 (0.3 m); whole tiles for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class NWPUDataset(_PresetDataset):
    """NWPU-RESISC45: 45 classes x 700 RGB .jpg tiles of 256x256; whole tiles for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class AIDDataset(_PresetDataset):
    """AID: 30 classes, 10,000 RGB images of 600x600 (0.5-8 m); 256 HR crops for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class RSSR25Dataset(_PresetDataset):
    """RSSR25: 5000 train / 150 test RGB scenes (0.06-1.5 m, mostly 720x720); 480 HR crops for training."""

    GT_SIZE = 480
