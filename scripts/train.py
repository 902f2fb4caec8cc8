"""Alias of `python -m basicsr.train` (and `rssr-train`) that imports rssr's registries explicitly.

Usage: python scripts/train.py -opt options/<file>.yml  (all BasicSR flags work; output under the current directory)
"""

from rssr_apps.cli import train

if __name__ == '__main__':
    train()
