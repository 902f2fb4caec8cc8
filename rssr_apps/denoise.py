"""``rssr-denoise``: denoised copies of HR images (OpenCV non-local means or BM3D), never in place.

Examples:
  python scripts/denoise_hr.py --input datasets/UCMerced/train/HR --output datasets/UCMerced/train/HR_nlm --method nlm
  python scripts/denoise_hr.py --input HR --output HR_bm3d --method bm3d --strength 5 --workers 2

Then make LR from the denoised HR (prepare_dataset.py --denoise does both). The
output keeps names and bit depth and gets provenance.json: method, strength,
versions and each image's PSNR against its original. Resumable (--resume).
"""

import argparse
import json
import math
import os
import sys
from os import path as osp

import rssr_compat  # noqa: F401

from rssr_data.denoise import DEFAULT_STRENGTH, METHODS, denoise, psnr
from rssr_utils.guards import float_in, int_in, positive_int
from rssr_utils.image_io import ImageError, path_key, read_image, write_image
from rssr_utils.image_jobs import PROVENANCE, Run, Source, execute


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


def _denoise_copy(job):
    """Denoise ``hr_src`` into ``hr_dst`` (atomic); returns (key, record)."""
    key, hr_src, hr_dst, method, strength, options = job
    img = read_image(hr_src, to_float=False)
    out = denoise(img, method, strength, **options)
    write_image(hr_dst, out)
    return key, _record(img, out)


def denoise_splits(src, out, splits, method, strength, options, workers=1):
    """Denoised HR copies for ``prepare_dataset.py --denoise``: ``<out>/<split>/HR/<rel>`` (JPEG/WebP -> .png).

    Resumable (existing copies are kept; the settings must match the first run's);
    writes ``<out>/provenance.json`` like denoise_hr.py. Returns {split: [(rel, hr_dst)]}.
    """
    from multiprocessing import Pool

    from tqdm import tqdm

    from rssr_utils.image_jobs import RECORDS_FILE, RUN_FILE, output_name, read_records, versions, write_json

    settings = {'tool': 'prepare_dataset --denoise', 'method': method, 'strength': strength, 'options': options}
    settings = json.loads(json.dumps(settings))
    targets = {
        name: [(rel, osp.join(out, name, 'HR', output_name(rel))) for rel in files] for name, files in splits.items()
    }
    previous = None
    for name in (RUN_FILE, PROVENANCE):
        if osp.isfile(osp.join(out, name)):
            with open(osp.join(out, name)) as f:
                previous = previous or json.load(f).get('settings')
    existing = [dst for pairs in targets.values() for _, dst in pairs if osp.isfile(dst)]
    if previous is None and existing:
        raise FileExistsError(f'{existing[0]} exists but {out} was prepared without --denoise; use another --out.')
    if previous is not None and previous != settings:
        raise ValueError(f'{out} was prepared with other denoising settings ({previous}); use another --out.')
    os.makedirs(out, exist_ok=True)
    write_json(osp.join(out, RUN_FILE), {'settings': settings})
    jobs = [
        (path_key(rel), osp.join(src, rel), dst, method, strength, options)
        for pairs in targets.values()
        for rel, dst in pairs
        if not osp.isfile(dst)
    ]
    records_path = osp.join(out, RECORDS_FILE)
    with Pool(workers) as pool, open(records_path, 'a') as log:
        for key, record in tqdm(pool.imap_unordered(_denoise_copy, jobs), total=len(jobs), desc=f'{method} HR'):
            log.write(json.dumps({'key': key, 'record': record}) + '\n')
            log.flush()
    records = read_records(out)
    for pairs in targets.values():  # records cut by an interruption: from the files
        for rel, dst in pairs:
            key = path_key(rel)
            if key not in records:
                _, records[key] = _psnr_of_files(key, osp.join(src, rel), dst)
    provenance = {
        'settings': settings,
        'input': osp.abspath(src),
        'output': osp.abspath(out),
        'command': ' '.join(sys.argv),
        'versions': versions(*(('bm3d',) if method == 'bm3d' else ())),
        'images': dict(sorted(records.items())),
    }
    write_json(osp.join(out, PROVENANCE), provenance)
    for name in (RUN_FILE, RECORDS_FILE):
        os.remove(osp.join(out, name))
    return targets


def _psnr_of_files(key, original, denoised):
    return key, _record(read_image(original, to_float=False), read_image(denoised, to_float=False))


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
