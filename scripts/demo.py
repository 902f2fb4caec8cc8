# flake8: noqa
"""Built-in demo: x4 training for a few minutes on real offline images, with validation PSNR/SSIM.

Usage: python scripts/demo.py [--debug | --auto_resume | --force_yml key=value ...]
"""

from os import path as osp

from rssr_cli import demo

if __name__ == '__main__':
    demo(osp.join(osp.dirname(osp.abspath(__file__)), osp.pardir, 'options', 'train_demo_x4.yml'))
