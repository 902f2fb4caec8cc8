"""The built-in demo (``rssr-demo`` / ``scripts/demo.py``): x4 training on real offline images.

Writes the demo data set (:mod:`rssr_data.demo`), prints the bicubic baseline of
its validation image, trains with ``options/train_demo_x4.yml`` through BasicSR's
own pipeline (validation PSNR/SSIM logged), then writes a side-by-side figure
(LR, bicubic, model output, HR, PSNR in the titles) and the figures it printed
to ``experiments/<name>/demo_result.{png,json}``.
"""

import argparse
import json
import os
import sys
from os import path as osp

import numpy as np

DEFAULT_OPT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'train_demo_x4.yml')


def _psnr(img, ref, scale):
    from basicsr.metrics import calculate_psnr

    return float(calculate_psnr(img, ref, crop_border=scale))


def _figure(path, panels):
    """Save (title, RGB uint8 image) panels side by side."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from rssr_utils.states import save_atomic

    h, w = panels[0][1].shape[:2]
    side = 2.4  # inches of a panel's shorter side
    size = (side, side * h / w) if h > w else (side * w / h, side)
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1] + 0.5))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img, interpolation='nearest')
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.tight_layout()
    save_atomic(fig, path, lambda figure, f: figure.savefig(f, format='png', dpi=110))
    plt.close(fig)


def _bicubic(lr_bgr, scale):
    from basicsr.utils.matlab_functions import imresize

    return np.clip(np.round(imresize(lr_bgr / 255.0, scale) * 255), 0, 255).astype(np.uint8)


def bicubic_psnr(opt):
    """Mean PSNR of MATLAB-bicubic upsampling over the demo's validation images."""
    import cv2

    val, scale = opt['datasets']['val'], opt['scale']
    psnrs = [
        _psnr(
            _bicubic(cv2.imread(osp.join(val['dataroot_lq'], n)), scale),
            cv2.imread(osp.join(val['dataroot_gt'], n)),
            scale,
        )
        for n in sorted(os.listdir(val['dataroot_gt']))
    ]
    return float(np.mean(psnrs))


def compare(opt, weights):
    """Run the trained demo network on the validation image; write the figure and the JSON; return the JSON."""
    import cv2
    import torch
    from basicsr.utils import img2tensor, tensor2img

    from rssr_utils.weights import build_model

    val, scale = opt['datasets']['val'], opt['scale']
    name = sorted(os.listdir(val['dataroot_gt']))[0]
    hr = cv2.imread(osp.join(val['dataroot_gt'], name))
    lr = cv2.imread(osp.join(val['dataroot_lq'], name))
    bicubic = _bicubic(lr, scale)
    net = build_model(opt['network_g'], weights)
    with torch.no_grad():
        sr = tensor2img(net(img2tensor(lr / 255.0, bgr2rgb=True, float32=True)[None]))
    result = {
        'image': name,
        'weights': weights,
        'psnr_bicubic': _psnr(bicubic, hr, scale),
        'psnr_model': _psnr(sr, hr, scale),
    }
    up = cv2.resize(lr, hr.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    panels = [
        (f'LR x{scale} (nearest)', up),
        (f'bicubic  {result["psnr_bicubic"]:.2f} dB', bicubic),
        (f'{opt["network_g"]["type"]}  {result["psnr_model"]:.2f} dB', sr),
        ('HR', hr),
    ]
    exp = osp.join('experiments', opt['name'])
    result['figure'] = osp.join(exp, 'demo_result.png')
    _figure(result['figure'], [(t, img[..., ::-1]) for t, img in panels])
    with open(osp.join(exp, 'demo_result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Any other BasicSR training flag is passed on, e.g. --force_yml train:total_iter=5000, --auto_resume.',
    )
    parser.add_argument('-opt', default=DEFAULT_OPT, help='demo option file (default: options/train_demo_x4.yml)')
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not osp.isfile(args.opt):
        parser.error(f'option file {args.opt} not found; run from the rssr checkout or pass -opt.')

    import rssr_patches
    from rssr_data.demo import make_demo_dataset
    from rssr_utils.options import OptionError

    rssr_patches.import_registries()
    from basicsr.train import train_pipeline
    from basicsr.utils.options import parse_options

    sys.argv = [sys.argv[0], '-opt', args.opt] + rest
    try:
        opt, _ = parse_options(os.getcwd(), is_train=True)  # the option file with --force_yml applied, checked
    except OptionError as error:
        parser.error(str(error))
    val = opt['datasets']['val']
    make_demo_dataset(osp.dirname(osp.dirname(val['dataroot_gt'])), scale=opt['scale'])
    print(
        f'Bicubic baseline on {val["name"]}: PSNR {bicubic_psnr(opt):.2f} dB (RGB, crop {opt["scale"]}); '
        'compare with the validation PSNR logged below.',
        flush=True,
    )
    train_pipeline(os.getcwd())  # what rssr-train runs, with the registries imported above
    weights = osp.join('experiments', opt['name'], 'models', 'net_g_latest.pth')
    result = compare(opt, weights)
    print(
        f'Demo done: on {result["image"]}, bicubic {result["psnr_bicubic"]:.2f} dB, {opt["network_g"]["type"]} '
        f'{result["psnr_model"]:.2f} dB (PSNR RGB, crop {opt["scale"]}). Figure: {result["figure"]}',
        flush=True,
    )
    return result
