"""Start-up hook that makes BasicSR's own entry points see rssr.

``rssr-autoload.pth``, installed next to this module in site-packages, imports
it when the interpreter starts. All it does then is put :class:`BasicSRHook`
first on ``sys.meta_path``: no other import, no work. The first time anything
imports ``basicsr`` (``python -m basicsr.train``, BasicSR's ``basicsr/train.py``,
a user's script), the hook:

1. before BasicSR's package ``__init__`` runs, imports :mod:`rssr_compat`, which
   aliases ``torchvision.transforms.functional_tensor`` (``basicsr/__init__``
   imports ``basicsr.data.degradations``, which needs it);
2. after it, imports rssr's packages (they register their archs, losses,
   datasets and model) and applies :func:`rssr_patches.patch_basicsr`, through
   :func:`rssr_patches.import_registries`; then it takes itself off
   ``sys.meta_path``.

Set ``RSSR_NO_AUTOLOAD=1`` to turn it off (``import rssr_arch`` etc. still
register explicitly). Without BasicSR installed, ``import basicsr`` fails with
Python's usual ``ModuleNotFoundError`` and nothing else changes.
"""

import os
import sys


class BasicSRHook:
    """Meta-path finder that runs rssr's set-up around the first import of ``basicsr``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, 'find_spec'):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        else:
            return None  # BasicSR is not installed: Python raises its usual error.
        if spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _Loader(spec.loader, self)
        return spec


class _Loader:
    """Runs ``loader.exec_module`` (BasicSR's ``__init__``) between rssr's two steps.

    Args:
        loader: The loader the import system found for ``basicsr``.
        hook (BasicSRHook): Taken off ``sys.meta_path`` once the set-up succeeded.
    """

    def __init__(self, loader, hook):
        self.loader = loader
        self.hook = hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps BasicSR's own loader (resources, source lookup).
        module.__loader__ = module.__spec__.loader = self.loader
        import rssr_compat  # noqa: F401  (aliases torchvision's functional_tensor on import)

        self.loader.exec_module(module)
        # rssr's packages import basicsr themselves: it is in sys.modules by now, so this does not recurse.
        import rssr_patches

        try:
            rssr_patches.import_registries()
        except Exception as error:
            if hasattr(error, 'add_note'):  # Python 3.11+
                error.add_note('(raised by rssr while setting up BasicSR; RSSR_NO_AUTOLOAD=1 turns that off)')
            raise
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)


def enabled():
    """False when ``RSSR_NO_AUTOLOAD`` is set to anything but ``''`` or ``'0'``."""
    return os.environ.get('RSSR_NO_AUTOLOAD', '') in ('', '0')


if enabled() and 'basicsr' not in sys.modules:
    sys.meta_path.insert(0, BasicSRHook())
