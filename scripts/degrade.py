"""LR images by Real-ESRGAN's second-order degradation, seeded per image, resumable (see --help).

Usage: python scripts/degrade.py --input HR_DIR --output LR_DIR --scale 4 --seed 0 [--config degrade.yml]
       [--workers N] [--resume | --overwrite]
"""

from rssr_apps.cli import degrade

if __name__ == '__main__':
    degrade()
