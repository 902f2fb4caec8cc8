"""Built-in demo: x4 training for a few minutes on real offline images, with validation PSNR/SSIM.

Usage: python scripts/demo.py [--debug | --auto_resume | --force_yml key=value ...]
"""

from rssr_apps.cli import demo

if __name__ == '__main__':
    demo()
