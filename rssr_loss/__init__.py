"""rssr's losses (``*_loss.py``, registered in BasicSR's ``LOSS_REGISTRY``).

Masks (nodata, a mask band, a cloud mask) reach every loss as BasicSR's
``weight``: an (N, 1, H, W) or (N, C, H, W) tensor, 1 = valid, 0 = left out.
BasicSR's ``L1Loss``, ``MSELoss`` and ``CharbonnierLoss`` then average over
valid pixels only (``weight_reduce_loss``: sum of weighted errors / (sum of
weights x bands)), so they need no wrapper; the values under a 0 must be
finite (0 x NaN is NaN), e.g. filled with
:func:`rssr_utils.radiometry.fill_invalid`. ``ExtremumVarianceLoss`` leaves out
every window touching a 0 and ``RSSRVGGFeatureLoss`` gives masked pixels the
target's values; both work per band / through ``rgb_bands`` for any band count.
"""

import importlib
from os import path as osp

import rssr_compat  # noqa: F401  (must precede the first basicsr import)

from basicsr.utils import scandir

# Import every '*_loss.py' module so that its classes register themselves.
_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_loss.py'))
_modules = [importlib.import_module(f'rssr_loss.{name}') for name in _names]
