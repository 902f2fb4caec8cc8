"""Local attribution maps (LAM) of one or several SR networks, with the diffusion index.

Usage: python scripts/lam.py -opt OPTION.yml [-opt ...] --image IMG.png --window X Y SIZE --output DIR
       [--lr-input] [--steps 50] [--sigma 1.2] [--kernel-size 9] [--batch N]   (see --help, rssr_apps/lam)
"""

import sys

from rssr_apps.cli import lam

if __name__ == '__main__':
    sys.exit(lam())
