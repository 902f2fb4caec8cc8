"""``rssr-denoise``: denoised copies of HR images (OpenCV non-local means or BM3D), never in place.

Examples:
  python scripts/denoise_hr.py --input datasets/UCMerced/train/HR --output datasets/UCMerced/train/HR_nlm --method nlm
  python scripts/denoise_hr.py --input HR --output HR_bm3d --method bm3d --strength 5 --workers 2

Then make LR from the denoised HR (prepare_dataset.py --denoise does both). The
output keeps names and bit depth and gets provenance.json: method, strength,
versions and each image's PSNR against its original. Resumable (--resume).
"""

import argparse
import contextlib
import math
import os
import sys
from os import path as osp

import rssr_compat  # noqa: F401

from rssr_data.degradations import check_lr_size
from rssr_data.denoise import DEFAULT_STRENGTH, METHODS, denoise, psnr
from rssr_utils.guards import float_in, int_in, positive_int
from rssr_utils.image_io import MAX_PIXELS, ImageError, decode, path_key, read_bytes, read_image, write_image
from rssr_utils.image_jobs import Run, Source, execute


class Denoiser:
    """Denoises a batch of images (the processor of :func:`rssr_utils.image_jobs.execute`).

    Args:
        method (str): 'nlm' or 'bm3d'.
        strength (float): NLM h / BM3D sigma, in 8-bit grey levels.
        options (dict): Method keyword arguments (h_color, template_size, search_size / profile).
    """

    def __init__(self, method, strength, options):
        self.method, self.strength, self.options = method, strength, options

    def __call__(self, images):
        results = []
        for _, _, img in images:
            out = denoise(img, self.method, self.strength, **self.options)
            results.append((out, _record(img, out)))
        return results


def _record(original, denoised):
    value = psnr(original, denoised)
    return {'psnr_vs_original': round(value, 4) if math.isfinite(value) else None}  # None: unchanged


def add_arguments(parser, required=True):
    """The denoising options (shared with prepare_dataset.py)."""
    parser.add_argument(
        '--method' if required else '--denoise',
        choices=METHODS,
        required=required,
        help='nlm: OpenCV non-local means; bm3d: the bm3d package',
    )
    strength = float_in(0, 255, above=True)
    parser.add_argument(
        '--strength', type=strength, help=f'NLM h / BM3D sigma in 8-bit grey levels ({DEFAULT_STRENGTH})'
    )
    parser.add_argument('--h-color', type=strength, help='NLM strength of the colour components (default: --strength)')
    parser.add_argument('--nlm-template', type=int_in(1, 99, odd=True), default=7, help='NLM patch size, odd (7)')
    parser.add_argument('--nlm-search', type=int_in(1, 199, odd=True), default=21, help='NLM search window, odd (21)')
    parser.add_argument('--bm3d-profile', default='np', help="bm3d profile ('np', 'refilter', 'lc', ...)")


def settings_from(args, method):
    """(strength, options) for :class:`Denoiser` from parsed arguments."""
    strength = DEFAULT_STRENGTH[method] if args.strength is None else args.strength
    if method == 'nlm':
        return strength, {'h_color': args.h_color, 'template_size': args.nlm_template, 'search_size': args.nlm_search}
    return strength, {'profile': args.bm3d_profile}


class SplitSource(Source):
    """The HR files of split lists under ``src``, named for ``<out>/<split>/HR/<rel>`` (a :class:`Source`).

    Each image is validated as the LR step validates it: readable, at most
    ``max_pixels``, RGB / grey, and no side under ``scale``.

    Args:
        src (str): The extracted download (``--src``).
        splits (dict): {split: [relative HR paths]} (:func:`rssr_data.prepare.plan`).
        max_pixels (int): Largest image accepted (``--max-pixels``).
        scale (int | None): Smallest LR scale; None: no size check.
    """

    def __init__(self, src, splits, max_pixels=MAX_PIXELS, scale=None):
        self.path, self.is_lmdb, self._lmdb = src, False, None
        self.max_pixels, self.scale = max_pixels, scale
        self.originals = {osp.join(name, 'HR', rel): rel for name, files in splits.items() for rel in files}
        self.items = [(path_key(rel), out_rel) for out_rel, rel in self.originals.items()]

    def name(self, key, rel):
        return osp.join(self.path, self.originals[rel])

    def read(self, key, rel):
        name = self.name(key, rel)
        img = decode(read_bytes(name), name, to_float=False, max_pixels=self.max_pixels)
        if self.scale:
            check_lr_size(img.shape, self.scale, name)
        return img


_WORKER = {}


def _init_worker(source, denoiser):
    _WORKER.update(source=source, denoiser=denoiser)


def _denoise_one(item):
    """Denoise one image of ``Run.todo`` into its target; returns (key, record, None) or (key, None, error)."""
    key, rel, target = item
    source = _WORKER['source']
    try:
        img = source.read(key, rel)
    except (ImageError, OSError) as error:
        return key, None, str(error)
    [(out, record)] = _WORKER['denoiser']([(key, source.name(key, rel), img)])
    write_image(target, out)
    return key, record, None


def denoise_splits(src, out, splits, method, strength, options, workers=1, max_pixels=MAX_PIXELS, scale=None):
    """Denoised HR copies for ``prepare_dataset.py --denoise``: ``<out>/<split>/HR/<rel>`` (JPEG/WebP -> .png).

    An :class:`rssr_utils.image_jobs.Run` that always resumes (existing copies
    are kept; the settings must match the first run's). Every HR is read before
    the verdict: bad ones are skipped and returned, the others denoised. When
    none is bad, ``<out>/provenance.json`` is written as denoise_hr.py writes it.

    Returns:
        tuple[dict, dict]: {split: [(rel, hr_dst)]} of the good HRs, and {hr_src: error} of the bad ones.
    """
    from multiprocessing import Pool

    from tqdm import tqdm

    source = SplitSource(src, splits, max_pixels, scale)
    settings = {'tool': 'prepare_dataset --denoise', 'method': method, 'strength': strength, 'options': options}
    run = Run(source, out, settings, mode='resume')
    run.start()
    denoiser = Denoiser(method, strength, options)
    failed = {}
    with contextlib.ExitStack() as stack, tqdm(total=len(run.todo), desc=f'{method} HR', unit='img') as bar:
        if workers <= 1:
            _init_worker(source, denoiser)
            results = map(_denoise_one, run.todo)
        else:
            pool = stack.enter_context(Pool(workers, _init_worker, (source, denoiser)))
            results = pool.imap_unordered(_denoise_one, run.todo)
        for key, record, error in results:
            if error:
                failed[key] = error
            else:
                run.record([(key, record)])
            bar.update()
    names = {key: rel for key, rel in source.items}
    if not failed:

        def recover(key, rel, target):  # an image written just before an interruption cut its record
            return _record(source.read(key, rel), read_image(target, to_float=False))

        run.finish(recover, library_versions=('bm3d',) if method == 'bm3d' else ())
    targets = {name: [] for name in splits}
    for key, out_rel in source.items:
        if key not in failed:
            targets[out_rel.split(os.sep)[0]].append((source.originals[out_rel], run.targets[key]))
    return targets, {source.name(key, names[key]): error for key, error in failed.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='HR folder or .lmdb')
    parser.add_argument('--output', required=True, help='new folder or .lmdb (never the input)')
    add_arguments(parser)
    parser.add_argument('--workers', type=positive_int, default=1)
    parser.add_argument('--ext', choices=['.png', '.tif'], help='output format (default: the input one when lossless)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--resume', action='store_true', help='skip finished images of an earlier run')
    mode.add_argument('--overwrite', action='store_true', help='replace the outputs of an earlier run')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    strength, options = settings_from(args, args.method)
    started = False
    try:
        source = Source(args.input)
        settings = {'tool': 'denoise', 'method': args.method, 'strength': strength, 'options': options, 'ext': args.ext}
        mode = 'resume' if args.resume else 'overwrite' if args.overwrite else None
        run = Run(source, args.output, settings, mode, args.ext)
        started = True
        execute(run, Denoiser, dict(method=args.method, strength=strength, options=options), args.workers)

        def recover(key, rel, target):  # an image written just before an interruption cut its record
            return _record(source.read(key, rel), read_image(target, to_float=False))

        library = ('bm3d',) if args.method == 'bm3d' else ()
        provenance = run.finish(recover, library_versions=library)
    except (ImageError, FileNotFoundError, FileExistsError, ValueError, OSError, KeyError, ImportError) as error:
        hint = ' (the finished images are kept: fix it and rerun with --resume)' if started else ''
        sys.exit(f'denoise: {error}{hint}')
    values = [v['psnr_vs_original'] for v in provenance['images'].values() if v['psnr_vs_original'] is not None]
    mean = sum(values) / max(len(values), 1)
    print(
        f'{args.output}: {len(values)} images ({args.method}, strength {strength}); mean PSNR vs original {mean:.2f} dB'
    )


if __name__ == '__main__':
    main()
