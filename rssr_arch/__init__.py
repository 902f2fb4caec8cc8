import importlib
from os import path as osp

import rssr_compat  # noqa: F401  (must precede the first basicsr import)

from basicsr.utils import scandir

# Import every '*_arch.py' module so that its classes register themselves.
_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_arch.py'))
_modules = [importlib.import_module(f'rssr_arch.{name}') for name in _names]

from .convert import convert_official_state_dict  # noqa: E402,F401
