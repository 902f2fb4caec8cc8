"""Alias of `python -m basicsr.test` (and `rssr-test`) that imports rssr's registries explicitly.

Usage: python scripts/test.py -opt options/<file>.yml  (all BasicSR flags work; output under the current directory)
"""

from rssr_apps.cli import test

if __name__ == '__main__':
    test()
