"""``rssr-degrade``: LR images by Real-ESRGAN's second-order degradation, seeded per image, resumable.

Examples:
  python scripts/degrade.py --input datasets/UCMerced/train/HR --output datasets/UCMerced/train/LR_x8_real --scale 8
  python scripts/degrade.py --input HR --output LR_real --scale 4 --seed 1 --config fat --workers 2
  python scripts/degrade.py --input HR.lmdb --output LR_real.lmdb --scale 4 --config my_degrade.yml --device cuda

The pipeline and its parameters: rssr_data/real_degradations.py (--config: a
preset, realesrgan (default: Real-ESRGAN's published settings) or fat (the FAT
repository's tool), or a YAML file of those keys, optionally with `preset:`).
Every random choice of an image comes from (--seed, its relative path without
extension), so the output is byte-identical across runs, --workers and
--batch-size on one device type. Writes LR_DIR/provenance.json: settings,
versions and each image's kernels, resize factors, noise and JPEG qualities.
"""

import argparse
import sys

import rssr_compat  # noqa: F401

from rssr_data.degradation_draws import ConfigError, describe, image_seed, load_config, sample_for_image
from rssr_data.real_degradations import check_size
from rssr_utils.guards import non_negative_int, positive_int
from rssr_utils.image_io import ImageError
from rssr_utils.image_jobs import Run, Source, execute, to_image, to_tensor


def record(cfg, seed, key, draws=None):
    """An image's provenance record: its seed and what was drawn for it (drawn again when ``draws`` is None)."""
    draws = sample_for_image(cfg, seed, key) if draws is None else draws
    return {'seed': image_seed(seed, key), **describe(draws, cfg)}


class Degrader:
    """Degrades batches of HR images (the processor of :func:`rssr_utils.image_jobs.execute`).

    Args:
        cfg (dict): Config from :func:`~rssr_data.degradation_draws.load_config`.
        scale (int): Downscaling factor.
        seed (int): The run's seed.
        device (str): 'cpu' or 'cuda[:n]'.
    """

    def __init__(self, cfg, scale, seed, device='cpu'):
        import torch

        from rssr_data.real_degradations import RealDegradation

        self.cfg, self.scale, self.seed = cfg, scale, seed
        self.device = torch.device(device)
        self.module = RealDegradation(scale).to(self.device)

    def __call__(self, images):
        """images: [(key, name, BGR HWC uint8/uint16)] -> [(LR of the same type, record)]."""
        import torch

        groups = {}  # images of one shape and type go through the HR-size stages together
        for index, (key, name, img) in enumerate(images):
            check_size(self.cfg, self.scale, img.shape[0], img.shape[1], name)
            groups.setdefault((img.shape, img.dtype.str), []).append(index)
        results = [None] * len(images)
        for indices in groups.values():
            hr = torch.cat([to_tensor(images[i][2])[0] for i in indices]).to(self.device)
            draws = [sample_for_image(self.cfg, self.seed, images[i][0]) for i in indices]
            lr = self.module(hr, draws)
            for i, d, out in zip(indices, draws, lr):
                key, _, img = images[i]
                results[i] = (to_image(out, img.dtype), record(self.cfg, self.seed, key, d))
        return results


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='HR folder or .lmdb')
    parser.add_argument('--output', required=True, help='LR folder or .lmdb (provenance.json inside)')
    parser.add_argument('--scale', type=positive_int, required=True, help='LR = HR / scale, e.g. 2 3 4 8 16')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--config', default='realesrgan', help='preset (realesrgan, fat) or YAML file')
    parser.add_argument('--workers', type=positive_int, default=1, help='processes (default 1)')
    parser.add_argument('--batch-size', type=positive_int, default=4, help='images per batch (default 4)')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:1 or auto (default)')
    parser.add_argument('--ext', choices=['.png', '.tif'], help='output format (default: the input one when lossless)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--resume', action='store_true', help='skip finished images of an earlier run')
    mode.add_argument('--overwrite', action='store_true', help='replace the outputs of an earlier run')
    return parser.parse_args(argv)


def main(argv=None):
    import torch

    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = args.device if args.device != 'auto' else ('cuda' if torch.cuda.is_available() else 'cpu')
    started = False
    try:
        cfg = load_config(args.config)
        source = Source(args.input)
        settings = {
            'tool': 'degrade',
            'scale': args.scale,
            'seed': args.seed,
            'device_type': torch.device(device).type,  # CPU and CUDA draw different noise fields
            'ext': args.ext,
            'config': cfg,
        }
        mode = 'resume' if args.resume else 'overwrite' if args.overwrite else None
        run = Run(source, args.output, settings, mode, args.ext)
        kwargs = dict(cfg=cfg, scale=args.scale, seed=args.seed, device=device)
        started = True
        execute(run, Degrader, kwargs, args.workers, args.batch_size, desc=f'degrade x{args.scale}')
        # An image written just before an interruption cut its record: its draws follow from its key.
        run.finish(
            lambda key, rel, target: record(cfg, args.seed, key),
            extra={'pipeline': 'rssr_data.real_degradations (Real-ESRGAN second order)'},
        )
    except (ImageError, ConfigError, FileNotFoundError, FileExistsError, ValueError, OSError, KeyError) as error:
        hint = ' (the finished images are kept: fix it and rerun with --resume)' if started else ''
        sys.exit(f'degrade: {error}{hint}')
    print(f'{args.output}: {len(source.items)} LR images (x{args.scale}, seed {args.seed}, {len(run.todo)} made now)')


if __name__ == '__main__':
    main()
