"""Drop-in for `basicsr/train.py` with rssr's archs, losses, datasets and models registered.

Usage: python scripts/train.py -opt options/<file>.yml  (all BasicSR flags work)
"""

from rssr_tools.cli import train

if __name__ == '__main__':
    train()
