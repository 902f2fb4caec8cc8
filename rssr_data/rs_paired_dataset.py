from os import path as osp

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from rssr_utils.image_io import ImageError, decode, read_bytes, scan_images
from rssr_utils.lmdb_util import LmdbReader, meta_keys

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
}


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
            Unknown keys are refused, so that typos do not pass silently.
            (rssr_utils.options checks these types and the Required keys at start-up.)
    """

    def __init__(self, opt):
        super().__init__()
        unknown = sorted(set(opt) - OWN_KEYS - BASICSR_KEYS)
        if unknown:
            raise KeyError(
                f'Unknown dataset option(s) {unknown} for {type(self).__name__} '
                f'{opt.get("name", "")!r}; it reads {sorted(OWN_KEYS)}.'
            )
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
        self.lmdb_readers = dict(zip(self.io_opt['client_keys'], (LmdbReader(root) for root in roots)))
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
            return decode(read_bytes(path), path, to_float)
        if backend == 'lmdb':  # UTF-8 keys (BasicSR's LmdbBackend only encodes ASCII)
            reader = self.lmdb_readers[client_key]
            return decode(reader.get(path), f'{reader.path}:{path}', to_float)
        if self.file_client is None:
            opts = dict(self.io_opt)
            self.file_client = FileClient(opts.pop('type'), **opts)
        try:
            content = self.file_client.get(path, client_key)
        except (OSError, KeyError, TypeError) as error:
            raise ImageError(f'{path}: cannot be read ({error}); check the file.') from error
        return decode(content, path, to_float)

    def __getitem__(self, index):
        gt_path, lq_path = self.pairs[index]
        scale = self.scale
        img_gt = self._read(gt_path, 'gt')
        if self.lq_from_gt:
            img_lq = bicubic_lr(img_gt, scale, gt_path)
            img_gt = mod_crop(img_gt, scale)
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
class RSSRUCMercedDataset(_PresetDataset):
    """UC Merced land use: 21 classes x 100 RGB .tif tiles of 256x256 (0.3 m); whole tiles for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class RSSRNWPUDataset(_PresetDataset):
    """NWPU-RESISC45: 45 classes x 700 RGB .jpg tiles of 256x256; whole tiles for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class RSSRAIDDataset(_PresetDataset):
    """AID: 30 classes, 10,000 RGB images of 600x600 (0.5-8 m); 256 HR crops for training."""

    GT_SIZE = 256


@DATASET_REGISTRY.register()
class RSSR25Dataset(_PresetDataset):
    """RSSR25: 5000 train / 150 test RGB scenes (0.06-1.5 m, mostly 720x720); 480 HR crops for training."""

    GT_SIZE = 480
