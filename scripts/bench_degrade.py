"""Images per second of scripts/degrade.py against the FAT repository's per-image loop, measured in one run.

Usage: python scripts/bench_degrade.py [--hr DIR] [--copies 2] [--rounds 3] [--scale 4] [--config fat]

Both sides degrade the same HR images (the shared RSSR25 samples by default,
--copies of each under other names, so the draws differ) with the same config
(default `fat`, the FAT tool's settings) and write PNGs, in this process, on CPU.

* ours: ``rssr_apps.degrade.main`` (scripts/degrade.py, --workers 1): reading,
  per-image seeded draws, the HR-size stages batched (--batch-size 4), the
  separable USM, modules built once, atomic writes and provenance.json.
* FAT loop: the loop structure of fengyanzi/FAT utils/realdownsample/
  realesrgan_degration.py rebuilt here from the same BasicSR functions (the FAT
  repository is not imported): per image, read, build DiffJPEG and USMSharp
  (BasicSR's 51x51 2-D filter), draw the kernels and the rest from the global
  RNGs, degrade a batch of one, sharpen the HR a second time (the tool does, and
  discards it), write. ``FAT loop - 2nd USM`` drops that unused second
  sharpening, to show what the rest of the speed-up comes from.

Rounds alternate the order of the sides; the table gives each side's median
images/s and the ratios of the medians.
"""

import argparse
import math
import os
import random
import statistics
import tempfile
import time

import rssr_compat  # noqa: F401

import cv2
import numpy as np
import torch
from basicsr.data.degradations import (
    circular_lowpass_kernel,
    random_add_gaussian_noise_pt,
    random_add_poisson_noise_pt,
    random_mixed_kernels,
)
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.img_process_util import filter2D
from torch.nn import functional as F

from rssr_apps.degrade import main as degrade_main
from rssr_data.degradation_draws import load_config
from rssr_utils.guards import non_negative_int, positive_int
from rssr_utils.image_io import scan_images

MODES = ['area', 'bilinear', 'bicubic']


def fat_kernels(cfg):
    """The FAT tool's kernel(): first, second and final sinc kernels from the global RNGs."""
    sizes = [2 * v + 1 for v in range(3, 11)]
    kernels = []
    for suffix in ('', '2'):
        size = random.choice(sizes)
        if np.random.uniform() < cfg['sinc_prob' + suffix]:
            omega_c = np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
            kernel = circular_lowpass_kernel(omega_c, size, pad_to=False)
        else:
            sigma = cfg['blur_sigma' + suffix]
            kernel = random_mixed_kernels(
                cfg['kernel_list' + suffix],
                cfg['kernel_prob' + suffix],
                size,
                sigma,
                sigma,
                [-math.pi, math.pi],
                cfg['betag_range' + suffix],
                cfg['betap_range' + suffix],
                noise_range=None,
            )
        pad = (21 - size) // 2
        kernels.append(torch.FloatTensor(np.pad(kernel, ((pad, pad), (pad, pad)))))
    if np.random.uniform() < cfg['final_sinc_prob']:
        omega_c = np.random.uniform(np.pi / 3, np.pi)
        kernels.append(torch.FloatTensor(circular_lowpass_kernel(omega_c, random.choice(sizes), pad_to=21)))
    else:
        pulse = torch.zeros(21, 21)
        pulse[10, 10] = 1
        kernels.append(pulse)
    return kernels


def fat_noise(out, cfg, suffix):
    if np.random.uniform() < cfg['gaussian_noise_prob' + suffix]:
        return random_add_gaussian_noise_pt(
            out,
            sigma_range=cfg['noise_range' + suffix],
            clip=True,
            rounds=False,
            gray_prob=cfg['gray_noise_prob' + suffix],
        )
    return random_add_poisson_noise_pt(
        out,
        scale_range=cfg['poisson_scale_range' + suffix],
        gray_prob=cfg['gray_noise_prob' + suffix],
        clip=True,
        rounds=False,
    )


def fat_resize_factor(cfg, suffix):
    kind = random.choices(['up', 'down', 'keep'], cfg['resize_prob' + suffix])[0]
    low, high = cfg['resize_range' + suffix]
    return np.random.uniform(1, high) if kind == 'up' else np.random.uniform(low, 1) if kind == 'down' else 1


def fat_synthesis(gt, cfg, scale, second_usm=True):
    """The FAT tool's synthesis(): modules built per call, a batch of one. gt: (3, H, W) in [0, 1]."""
    jpeger = DiffJPEG(differentiable=False)
    usm_sharpener = USMSharp()
    kernel1, kernel2, sinc_kernel = fat_kernels(cfg)
    gt = gt.unsqueeze(0)
    h, w = gt.shape[2:]
    out = filter2D(usm_sharpener(gt), kernel1)
    out = F.interpolate(out, scale_factor=fat_resize_factor(cfg, ''), mode=random.choice(MODES))
    out = fat_noise(out, cfg, '')
    out = jpeger(torch.clamp(out, 0, 1), quality=out.new_zeros(1).uniform_(*cfg['jpeg_range']))
    mid = cfg['mid_downscale'] or scale
    out = F.interpolate(out, size=(int(h / mid), int(w / mid)), mode=random.choice(MODES))
    if np.random.uniform() < cfg['second_blur_prob']:
        out = filter2D(out, kernel2)
    factor = fat_resize_factor(cfg, '2') ** cfg['resize2_power']
    out = F.interpolate(out, size=(int(h / mid * factor), int(w / mid * factor)), mode=random.choice(MODES))
    out = fat_noise(out, cfg, '2')
    quality = out.new_zeros(1).uniform_(*cfg['jpeg_range2'])
    if np.random.uniform() < 0.5:
        out = jpeger(torch.clamp(filter2D(out, sinc_kernel), 0, 1), quality=quality)
    else:
        out = filter2D(jpeger(torch.clamp(out, 0, 1), quality=quality), sinc_kernel)
    out = F.interpolate(out, size=(h // scale, w // scale), mode=random.choice(MODES))
    lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
    if second_usm:
        usm_sharpener(gt)  # the tool sharpens the HR again after degrading and does not use it
    return lq.squeeze(0)


def run_fat_loop(hr_dir, out_dir, cfg, scale, second_usm):
    os.makedirs(out_dir, exist_ok=True)
    for rel in scan_images(hr_dir):
        img = cv2.imread(os.path.join(hr_dir, rel))
        gt = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float() / 255
        lq = fat_synthesis(gt, cfg, scale, second_usm)
        out = (lq * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()[..., ::-1]
        cv2.imwrite(os.path.join(out_dir, rel), out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_hr = os.path.join(os.environ.get('RSSR_SHARED', '../shared'), 'samples/rssr25_sample/train/HR')
    parser.add_argument('--hr', default=default_hr, help='HR folder (default: the shared RSSR25 samples)')
    parser.add_argument('--copies', type=positive_int, default=2, help='copies of each image, under other names')
    parser.add_argument('--rounds', type=positive_int, default=3)
    parser.add_argument('--scale', type=positive_int, default=4)
    parser.add_argument('--config', default='fat')
    parser.add_argument('--threads', type=non_negative_int, default=0, help='torch threads (default: torch default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory() as work:
        hr_dir = os.path.join(work, 'HR')
        os.makedirs(hr_dir)
        for rel in scan_images(args.hr):
            img = cv2.imread(os.path.join(args.hr, rel))
            for copy in range(args.copies):
                cv2.imwrite(os.path.join(hr_dir, f'{os.path.splitext(rel)[0]}_{copy}.png'), img)
        num = len(scan_images(hr_dir))
        sides = {
            'ours (degrade.py)': lambda out: degrade_main(
                ['--input', hr_dir, '--output', out, '--scale', str(args.scale), '--config', args.config]
            ),
            'FAT loop': lambda out: run_fat_loop(hr_dir, out, cfg, args.scale, True),
            'FAT loop - 2nd USM': lambda out: run_fat_loop(hr_dir, out, cfg, args.scale, False),
        }
        rates = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                out = os.path.join(work, f'out_{r}_{len(rates[name])}_{abs(hash(name))}')
                start = time.perf_counter()
                sides[name](out)
                rates[name].append(num / (time.perf_counter() - start))
    ours = statistics.median(rates['ours (degrade.py)'])
    print(
        f'\n{num} images of {args.hr} x{args.copies}, x{args.scale}, config {args.config}, '
        f'{torch.get_num_threads()} torch threads, {args.rounds} rounds (alternating order)'
    )
    print('| side | images/s (median) | per round | ours / side |')
    print('| --- | --- | --- | --- |')
    for name, values in rates.items():
        median = statistics.median(values)
        per_round = ', '.join(f'{v:.3f}' for v in values)
        print(f'| {name} | {median:.3f} | {per_round} | {ours / median:.2f}x |')


if __name__ == '__main__':
    main()
