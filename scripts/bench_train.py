"""Memory and time per training iteration of a training option file, on random data of its batch shape.

Usage: python scripts/bench_train.py -opt options/train_tsfnet_x8_ucmerced.yml [--iters 3] [--gt-size N] [--batch N]

Builds the option file's model as BasicSR's train.py does (network, losses, optimizer, on CPU or the first
GPU), then runs ``--iters`` iterations of ``feed_data`` + ``optimize_parameters`` on random [0, 1] batches
of the file's ``batch_size_per_gpu`` x ``gt_size`` (HR) and ``gt_size / scale`` (LR) and prints the seconds
of each iteration and the process's peak resident memory (CPU) or peak allocated memory (GPU). Data
loading is not included. ``--gt-size`` / ``--batch`` measure a smaller configuration. Figures:
docs/hardware.md.
"""

import argparse
import time

import rssr_compat  # noqa: F401

import torch
import yaml


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='training option file')
    parser.add_argument('--iters', type=int, default=3, help='iterations to time (default 3)')
    parser.add_argument('--gt-size', type=int, help="HR crop (default: the file's gt_size)")
    parser.add_argument('--batch', type=int, help="batch size (default: the file's batch_size_per_gpu)")
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    args = parser.parse_args(argv)

    import rssr_patches
    from rssr_utils.memory import peak_rss_mib

    rssr_patches.import_registries()
    from basicsr.models import build_model

    with open(args.opt) as f:
        opt = yaml.safe_load(f)
    cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    train = opt['datasets']['train']
    gt_size = args.gt_size or train['gt_size']
    batch = args.batch or train['batch_size_per_gpu']
    scale = opt['scale']
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1 if cuda else 0)
    opt['path'] = dict(opt.get('path') or {}, pretrain_network_g=None, resume_state=None)
    torch.manual_seed(0)
    model = build_model(opt)
    device = model.device
    print(f'{args.opt}: {opt["network_g"]["type"]}, batch {batch}, HR {gt_size}, LR {gt_size // scale}, {device}')
    for it in range(1, args.iters + 1):
        gt = torch.rand(batch, 3, gt_size, gt_size)
        lq = torch.nn.functional.interpolate(gt, scale_factor=1 / scale, mode='bicubic', antialias=True)
        start = time.perf_counter()
        model.feed_data({'lq': lq.clamp(0, 1), 'gt': gt})
        model.optimize_parameters(it)
        if cuda:
            torch.cuda.synchronize()
        print(f'iteration {it}: {time.perf_counter() - start:.2f} s', flush=True)
    if cuda:
        print(f'peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB')
    print(f'peak resident memory of the process: {peak_rss_mib() / 1024:.2f} GiB')


if __name__ == '__main__':
    main()
