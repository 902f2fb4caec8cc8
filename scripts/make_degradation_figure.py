"""The figure of docs/degradations.md: HR crop, bicubic LR, three seeded real-degradation LRs, NLM and BM3D HR.

Usage: python scripts/make_degradation_figure.py [--hr ../shared/samples/rssr25_sample/train/HR/42_1.png]
       [--crop Y X SIZE] [--scale 4] [--config realesrgan] [--out docs/degradations.png]

LR panels are shown enlarged (nearest neighbour) to the HR crop's size. The
real-degradation LRs are those scripts/degrade.py writes for this crop with
--seed 0, 1, 2 (the crop's key is the file stem); denoising uses the tools'
default strengths (NLM h 3, BM3D sigma 3).
"""

import argparse
import os

import rssr_compat  # noqa: F401

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from rssr_apps.degrade import Degrader  # noqa: E402
from rssr_data.degradation_draws import load_config  # noqa: E402
from rssr_data.degradations import bicubic_lr  # noqa: E402
from rssr_data.denoise import denoise, psnr  # noqa: E402
from rssr_utils.guards import non_negative_int, positive_int


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = os.environ.get('RSSR_SHARED', '../shared')
    parser.add_argument('--hr', default=os.path.join(shared, 'samples/rssr25_sample/train/HR/42_1.png'))
    parser.add_argument('--crop', type=non_negative_int, nargs=3, default=(96, 96, 160), metavar=('Y', 'X', 'SIZE'))
    parser.add_argument('--scale', type=positive_int, default=4)
    parser.add_argument('--config', default='realesrgan')
    parser.add_argument('--out', default='docs/degradations.png')
    args = parser.parse_args()
    y, x, size = args.crop
    hr = cv2.imread(args.hr, cv2.IMREAD_UNCHANGED)[y : y + size, x : x + size]
    key = os.path.splitext(os.path.basename(args.hr))[0]
    panels = [('HR crop', hr), (f'bicubic LR x{args.scale}', bicubic_lr(hr, args.scale))]
    for seed in range(3):
        lr, record = Degrader(load_config(args.config), args.scale, seed)([(key, args.hr, hr)])[0]
        jpeg = min(q for q in (record['jpeg1'], record['jpeg2'], 100) if q)
        panels.append((f'real LR, seed {seed}\n{record["noise1"]["type"]} noise, JPEG q>={jpeg:.0f}', lr))
    for method in ('nlm', 'bm3d'):
        out = denoise(hr, method)
        panels.append((f'{method.upper()} HR\n{psnr(hr, out):.1f} dB vs HR', out))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.75 * len(panels), 2.5))
    for ax, (title, img) in zip(axes, panels):
        shown = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
        ax.imshow(shown[..., ::-1])
        ax.set_title(title, fontsize=7)
        ax.axis('off')
    fig.tight_layout(pad=0.2)
    fig.savefig(args.out, dpi=110)
    print(f'{args.out}: {os.path.getsize(args.out) / 1024:.0f} KB')


if __name__ == '__main__':
    main()
