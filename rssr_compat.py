"""Compatibility shims applied before :mod:`basicsr` is imported.

BasicSR 1.4.2 (the newest release) imports
``torchvision.transforms.functional_tensor``, a private module that torchvision
removed in 0.17. Every rssr package imports this module first, so that
``import rssr_arch`` (or ``rssr_loss``, ``rssr_data``, ``rssr_model``) works with
current torchvision. This is the only place the alias lives.
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
