"""rssr's tools: weights, benchmark, scene inference and the command-line entry points.

Nothing here registers anything in BasicSR; the tools use what ``rssr_arch``,
``rssr_loss``, ``rssr_data`` and ``rssr_model`` register.
"""

import rssr_compat  # noqa: F401

PACKAGES = ('rssr_arch', 'rssr_loss', 'rssr_data', 'rssr_model')


def import_registries():
    """Import rssr's packages (they register their classes) and apply :func:`rssr_compat.patch_basicsr`."""
    import importlib

    for package in PACKAGES:
        importlib.import_module(package)
    rssr_compat.patch_basicsr()
