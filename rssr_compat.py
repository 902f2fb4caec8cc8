"""The one change rssr must make before BasicSR is imported: a torchvision alias. Imports nothing of rssr.

BasicSR 1.4.2's ``basicsr.data.degradations`` (imported by ``basicsr/__init__``)
imports ``torchvision.transforms.functional_tensor``, which torchvision removed
in 0.17; :func:`install` (run on import) points that name at its public
successor. Every rssr package imports this module before its first BasicSR
import, and so does the start-up hook (:mod:`rssr_autoload`). The patches
rssr applies to BasicSR once it is imported live in :mod:`rssr_patches`.
"""

import importlib
import sys

_LEGACY = 'torchvision.transforms.functional_tensor'


def install():
    """Alias the removed torchvision module to its public successor (idempotent)."""
    if _LEGACY in sys.modules:
        return
    try:
        importlib.import_module(_LEGACY)
    except ImportError:
        import torchvision.transforms.functional as functional

        sys.modules[_LEGACY] = functional


install()
