"""Drop-in for `basicsr/test.py` with rssr's archs, losses, datasets and models registered.

Usage: python scripts/test.py -opt options/<file>.yml  (all BasicSR flags work)
"""

from rssr_tools.cli import test

if __name__ == '__main__':
    test()
