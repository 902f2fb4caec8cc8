"""Image folder (or LMDB) in, image folder (or LMDB) out: resumable, seeded-worker-safe, with a provenance file.

Shared by ``scripts/degrade.py`` and ``scripts/denoise_hr.py``. A run:

* reads a folder (class sub-folders included) or a BasicSR LMDB (keys from
  ``meta_info.txt``); an image's *key* is its relative path without extension
  (``/`` separated), the same in both, so seeds derived from it do not depend
  on the storage;
* writes one image per input under the same relative name (JPEG/WebP inputs
  become ``.png``: the outputs are never re-compressed), in the input's bit
  depth, each to a temporary name then renamed, so a file that exists is whole;
* refuses an output that is, contains or lies inside the input (even with
  ``overwrite``), and one that already holds results unless ``resume`` (skip the
  finished images; the settings must be those of the first run, kept in
  ``.provenance.run.json``) or ``overwrite``;
* appends each image's record to ``.provenance.records.jsonl`` as it goes and,
  when all are done, writes ``provenance.json`` (settings, versions, command,
  per-image records) and removes the two hidden files;
* for an ``.lmdb`` output, fills ``<out>.staging/`` the same way, then packs it
  with :func:`rssr_utils.lmdb_util.write_lmdb` (atomic) and removes it.

Work is split into batches of consecutive sorted images; ``workers`` > 1 runs
batches in spawned processes (each with ``cpu_count // workers`` torch threads).
"""

import json
import multiprocessing
import os
import platform
import re
import shutil
import sys
import time
from os import path as osp

import cv2
import numpy as np

from rssr_utils.guards import check_apart
from rssr_utils.image_io import decode, path_key, read_bytes, scan_images, text_name, write_image

RUN_FILE = '.provenance.run.json'
RECORDS_FILE = '.provenance.records.jsonl'
PROVENANCE = 'provenance.json'
LOSSLESS = ('.png', '.tif', '.tiff', '.bmp')
_TMP = re.compile(r'\.\d+\.tmp(\.[A-Za-z0-9]+)?$')


class Source:
    """The images of a folder or a BasicSR LMDB, by key.

    Args:
        path (str): Folder, or ``.lmdb`` folder with ``meta_info.txt``.
    """

    def __init__(self, path):
        self.path = path
        self.is_lmdb = path.rstrip('/').endswith('.lmdb')
        self._lmdb = None
        if self.is_lmdb:
            from rssr_utils.lmdb_util import LmdbReader, meta_keys

            self.items = [(key, key + '.png') for key in meta_keys(path)]
            self._lmdb = LmdbReader(path)  # opened in each process that reads
        else:
            self.items = [(path_key(text_name(rel, path)), rel) for rel in scan_images(path)]

    def name(self, key, rel):
        return f'{self.path}:{key}' if self.is_lmdb else osp.join(self.path, rel)

    def read(self, key, rel):
        """The image as BGR HWC integers (uint8 / uint16, 3 channels); errors name the file."""
        name = self.name(key, rel)
        content = self._lmdb.get(key) if self.is_lmdb else read_bytes(name)
        return decode(content, name, to_float=False)


def output_name(rel, ext=None):
    """``rel`` with ``ext`` ('.png', '.tif'), or kept when lossless, else '.png'."""
    stem, old = osp.splitext(rel)
    return stem + (ext or (old if old.lower() in LOSSLESS else '.png'))


def write_json(path, obj):
    """Write ``obj`` atomically: indented, except one line per entry of its ``images`` mapping."""
    rest = {k: v for k, v in obj.items() if k != 'images'}
    head = json.dumps(rest, indent=1)
    if 'images' in obj:
        lines = ',\n'.join(f'  {json.dumps(key)}: {json.dumps(value)}' for key, value in obj['images'].items())
        head = (head[:-2] + ',\n' if rest else '{\n') + f' "images": {{\n{lines}\n }}\n}}'
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        f.write(head + '\n')
    os.replace(tmp, path)


def versions(*modules):
    """Versions of the libraries a result depends on."""
    import basicsr
    import torch

    found = {'python': platform.python_version(), 'numpy': np.__version__, 'opencv': cv2.__version__}
    found.update(torch=torch.__version__, basicsr=basicsr.__version__)
    try:
        from importlib.metadata import version

        found['rssr'] = version('rssr')
        for module in modules:
            found[module] = version(module)
    except Exception:  # noqa: BLE001  (an uninstalled checkout has no metadata)
        pass
    return found


def read_records(folder):
    """{key: record} of an output folder: from its provenance.json (a finished run resumed), then its log."""
    records = {}
    if osp.isfile(osp.join(folder, PROVENANCE)):
        with open(osp.join(folder, PROVENANCE)) as f:
            records.update(json.load(f).get('images', {}))
    path = osp.join(folder, RECORDS_FILE)
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by an interruption
                        continue
                    records[entry['key']] = entry['record']
    return records


def _normal(obj):
    return json.loads(json.dumps(obj))


class Run:
    """An output folder or LMDB being filled; see the module docstring.

    Args:
        source (Source): The inputs.
        out (str): Output folder, or ``.lmdb`` path.
        settings (dict): JSON-able settings that determine the outputs; a resumed run must match them.
        mode (str | None): None, 'resume' or 'overwrite'.
        ext (str | None): Output extension ('.png', '.tif'); None keeps lossless ones.
    """

    def __init__(self, source, out, settings, mode=None, ext=None):
        self.source, self.out, self.settings, self.mode = source, out, _normal(settings), mode
        self.lmdb = out.rstrip('/').endswith('.lmdb')
        self.dir = out.rstrip('/') + '.staging' if self.lmdb else out
        for written in {out, self.dir}:  # before anything is read or made: --overwrite must never reach the input
            check_apart(written, [source.path])
        if self.lmdb:
            from rssr_utils.lmdb_util import recover

            recover(out)  # a kill during an earlier install: restore or finish it first
        self.targets = {key: osp.join(self.dir, output_name(rel, ext)) for key, rel in source.items}
        self.done = False
        if self.lmdb and osp.exists(out):
            if mode == 'overwrite':
                pass
            elif mode == 'resume' and self._previous(osp.join(out, PROVENANCE)) == self.settings:
                self.done = True  # packed by an earlier run with these settings
            else:
                raise FileExistsError(
                    f'{out} exists; pass --overwrite to replace it (or --resume with the settings it was made '
                    'with). Nothing was written.'
                )
        existing = [t for t in self.targets.values() if osp.isfile(t)]
        hidden = [osp.join(self.dir, n) for n in (RUN_FILE, PROVENANCE) if osp.isfile(osp.join(self.dir, n))]
        if (existing or hidden) and mode is None:
            first = (existing or hidden)[0]
            raise FileExistsError(
                f'{first} exists ({len(existing)} of the {len(self.targets)} outputs do): pass --resume to finish '
                'that run or --overwrite to replace its images. Nothing was written.'
            )
        if mode == 'resume' and (existing or hidden):
            previous = self._previous(osp.join(self.dir, RUN_FILE)) or self._previous(osp.join(self.dir, PROVENANCE))
            if previous is None:
                raise FileExistsError(
                    f'{self.dir} holds images but no {RUN_FILE} / {PROVENANCE} to tell how they were made; '
                    'use --overwrite or another output folder.'
                )
            if previous != self.settings:
                changed = sorted(
                    k for k in set(previous) | set(self.settings) if previous.get(k) != self.settings.get(k)
                )
                raise ValueError(
                    f'{self.dir} was made with other settings ({", ".join(changed)} differ); resume with the same '
                    'ones, or use --overwrite or another output folder.'
                )
        self.todo = (
            []
            if self.done
            else [
                (key, rel, self.targets[key])
                for key, rel in source.items
                if mode != 'resume' or not osp.isfile(self.targets[key])
            ]
        )

    @staticmethod
    def _previous(path):
        if not osp.isfile(path):
            return None
        with open(path) as f:
            return json.load(f).get('settings')

    def start(self):
        """Prepare the output folder: stale temporary files removed, settings recorded."""
        os.makedirs(self.dir, exist_ok=True)
        for root, _, files in os.walk(self.dir):
            for name in files:
                if _TMP.search(name):
                    os.remove(osp.join(root, name))  # left by an interrupted run
        records = osp.join(self.dir, RECORDS_FILE)
        if self.mode != 'resume' and osp.exists(records):
            os.remove(records)
        write_json(osp.join(self.dir, RUN_FILE), {'settings': self.settings})

    def record(self, results):
        """Append the records of written images: results = [(key, record)]."""
        with open(osp.join(self.dir, RECORDS_FILE), 'a') as f:
            for key, record in results:
                f.write(json.dumps({'key': key, 'record': record}) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def finish(self, recover, extra=None, library_versions=()):
        """Write provenance.json (records missing from the log come from ``recover(key, rel, target)``); pack LMDB."""
        if self.done:  # an LMDB packed by an earlier run with these settings
            with open(osp.join(self.out, PROVENANCE)) as f:
                return json.load(f)
        records = read_records(self.dir)
        images = {}
        for key, rel in self.source.items:
            images[key] = records[key] if key in records else recover(key, rel, self.targets[key])
        provenance = {
            'settings': self.settings,
            'input': osp.abspath(self.source.path),
            'output': osp.abspath(self.out),
            'command': ' '.join(sys.argv),
            'finished': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            'versions': versions(*library_versions),
            **(extra or {}),
            'images': images,
        }
        write_json(osp.join(self.dir, PROVENANCE), provenance)
        for name in (RUN_FILE, RECORDS_FILE):
            if osp.exists(osp.join(self.dir, name)):
                os.remove(osp.join(self.dir, name))
        if self.lmdb:
            from rssr_utils.lmdb_util import write_lmdb

            rels = [osp.relpath(self.targets[key], self.dir) for key, _ in self.source.items]
            write_lmdb(self.dir, rels, self.out, overwrite=True)
            shutil.copyfile(osp.join(self.dir, PROVENANCE), osp.join(self.out, PROVENANCE))
            shutil.rmtree(self.dir)
        return provenance


_WORKER = {}


def _init_worker(source, factory, kwargs, threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    _WORKER.update(source=source, processor=factory(**kwargs))


def _process(batch):
    """Read, process and write one batch in this process; returns [(key, record)]."""
    source, processor = _WORKER['source'], _WORKER['processor']
    images = [(key, source.name(key, rel), source.read(key, rel)) for key, rel, _ in batch]
    results = processor(images)
    for (key, _, target), (img, _) in zip(batch, results):
        write_image(target, img)
    return [(key, record) for (key, _, _), (_, record) in zip(batch, results)]


def execute(run, factory, kwargs, workers=1, batch_size=1, desc='images'):
    """Run ``factory(**kwargs)`` (built once per process) over ``run.todo`` in batches; records as they finish.

    ``factory(**kwargs)`` returns a callable taking [(key, name, image)] and
    returning [(output image, JSON-able record)].
    """
    from tqdm import tqdm

    if run.done:
        return
    batches = [run.todo[i : i + batch_size] for i in range(0, len(run.todo), batch_size)]
    run.start()
    with tqdm(total=len(run.todo), desc=desc, unit='img') as bar:
        if workers <= 1:
            _init_worker(run.source, factory, kwargs, 0)
            for batch in batches:
                run.record(_process(batch))
                bar.update(len(batch))
            return
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context('spawn')  # torch and fork do not mix
        with context.Pool(workers, _init_worker, (run.source, factory, kwargs, threads)) as pool:
            for results in pool.imap_unordered(_process, batches):
                run.record(results)
                bar.update(len(results))


def to_tensor(img):
    """BGR HWC integers -> (1, 3, H, W) RGB float32 in [0, 1] and the type's maximum."""
    import torch

    peak = np.iinfo(img.dtype).max
    return torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None].float() / peak, peak


def to_image(tensor, dtype):
    """(3, H, W) RGB float in [0, 1] -> BGR HWC integers of ``dtype``, rounded."""
    peak = np.iinfo(dtype).max
    out = (tensor * peak).round().clamp(0, peak).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[..., ::-1]).astype(dtype)
