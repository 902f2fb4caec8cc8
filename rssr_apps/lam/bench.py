"""Speed of batched LAM path steps against one step at a time (``scripts/bench_lam.py``).

Runs :func:`~rssr_apps.lam.core.path_attribution` on the same network, LR
image and window with ``--batch 1`` and ``--batch N``, alternating the two
``--repeats`` times for each intra-op thread count, and prints the median
seconds per path step and the speed-up, measured in the same run. The maps of
the two settings are compared too (largest difference / largest value).

Default: BasicSR's EDSR (64 channels, 16 blocks, x4, random weights: speed
does not depend on them) on a 48x48 LR crop of the shared RSSR25 sample
``train/HR/42_1.png`` through ``bicubic_lr`` (a smooth random image when the
samples are absent), window 32 at the SR centre, 10 path steps.
"""

import argparse
import os
import platform
import statistics
import time
from os import path as osp

import numpy as np
import torch

from .cli import load_lr
from .core import path_attribution

EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 4}
SAMPLE = osp.join('samples', 'rssr25_sample', 'train', 'HR', '42_1.png')


def _shared_dir():
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return os.environ.get('RSSR_SHARED', osp.join(osp.dirname(root), 'shared'))


def bench_image(size, scale):
    """(3, size, size) LR crop: the centre of the shared sample's LR image, else a smooth random image."""
    sample = osp.join(_shared_dir(), SAMPLE)
    if osp.isfile(sample):
        lr, _ = load_lr(sample, scale)
        top, left = (lr.shape[1] - size) // 2, (lr.shape[2] - size) // 2
        if top >= 0 and left >= 0:
            return lr[:, top : top + size, left : left + size].contiguous(), f'{SAMPLE} (LR centre crop)'
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.random((1, 3, size // 4 + 1, size // 4 + 1)).astype(np.float32))
    img = torch.nn.functional.interpolate(noise, size=(size, size), mode='bicubic', align_corners=False)
    return img[0].clamp(0, 1), 'smooth random image (shared samples absent)'


def main(argv=None):
    from rssr_utils.guards import positive_int
    from rssr_utils.weights import build_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lr-size', type=positive_int, default=48, help='LR crop side (default: 48)')
    parser.add_argument('--window', type=positive_int, default=32, help='window side in SR pixels, at the centre')
    parser.add_argument('--steps', type=positive_int, default=10, help='path steps per run (default: 10)')
    parser.add_argument('--batch', type=positive_int, default=10, help='batched setting (default: 10)')
    parser.add_argument('--repeats', type=positive_int, default=3, help='A/B alternations (default: 3)')
    parser.add_argument(
        '--threads',
        type=positive_int,
        nargs='+',
        default=[1, torch.get_num_threads()],
        help="intra-op thread counts to measure (default: 1 and torch's default)",
    )
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    parser.add_argument('--num-feat', type=positive_int, default=64)
    parser.add_argument('--num-block', type=positive_int, default=16)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_model({**EDSR, 'num_feat': args.num_feat, 'num_block': args.num_block}, device=device)
    scale = EDSR['upscale']
    lr, source = bench_image(args.lr_size, scale)
    lr = lr.to(device)
    side = args.lr_size * scale
    window = ((side - args.window) // 2, (side - args.window) // 2, args.window)
    print(
        f'EDSR num_feat {args.num_feat}, num_block {args.num_block}, x{scale}; LR {args.lr_size}x{args.lr_size} from '
        f'{source}; window {window}; {args.steps} steps; device {device}; torch {torch.__version__}; '
        f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average '
        f'{"/".join(f"{v:.1f}" for v in os.getloadavg())}'
    )

    def run(batch):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = path_attribution(net, lr, window, steps=args.steps, batch=batch, net=net)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.steps, result.attribution

    threads_default = torch.get_num_threads()
    thread_counts = args.threads if device.type == 'cpu' else [threads_default]
    run(args.batch)  # warm-up (allocator, kernels)
    print(f'{"threads":>7} {"repeat":>6} {"batch 1 s/step":>15} {f"batch {args.batch} s/step":>16} {"speed-up":>9}')
    summary = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        ones, batched, ratios = [], [], []
        for repeat in range(args.repeats):
            order = (1, args.batch) if repeat % 2 == 0 else (args.batch, 1)  # alternate which goes first
            times = {}
            for batch in order:
                times[batch], maps = run(batch)
                if batch == 1:
                    map_one = maps
                else:
                    map_batched = maps
            ones.append(times[1])
            batched.append(times[args.batch])
            ratios.append(times[1] / times[args.batch])
            print(
                f'{threads:>7} {repeat:>6} {times[1]:>15.3f} {times[args.batch]:>16.3f} {ratios[-1]:>8.2f}x', flush=True
            )
        diff = np.abs(map_batched - map_one).max() / np.abs(map_one).max()
        summary.append((threads, statistics.median(ones), statistics.median(batched), statistics.median(ratios), diff))
    torch.set_num_threads(threads_default)
    print('\nmedians:')
    print(f'{"threads":>7} {"batch 1 s/step":>15} {f"batch {args.batch} s/step":>16} {"speed-up":>9} {"map diff":>9}')
    for threads, one, batched, ratio, diff in summary:
        print(f'{threads:>7} {one:>15.3f} {batched:>16.3f} {ratio:>8.2f}x {diff:>9.1e}')
    return summary
