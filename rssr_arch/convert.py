"""Load the authors' released checkpoints into our modules.

The official key names live only in the per-arch converter modules
(``convert_<arch>.py``); each exposes ``convert(state_dict) -> state_dict`` that
maps every official key to ours or drops it on purpose (modules the official
code builds but never uses in ``forward``), and raises on anything unknown.
"""

import importlib

_CONVERTERS = {'TSFNet': 'rssr_arch.convert_tsfnet', 'FAT': 'rssr_arch.convert_fat'}


def convert_official_state_dict(arch, official_state_dict):
    """Map an official checkpoint of ``arch`` ('TSFNet' or 'FAT') to our key names.

    Args:
        arch (str): Registered arch name.
        official_state_dict (dict): The official weights as a bare state dict
            (:func:`rssr_utils.weights.read_state_dict` with ``official=True``
            reads them from the authors' files).

    Returns:
        dict: A state dict for ``ARCH_REGISTRY.get(arch)`` with ``strict=True``.
    """
    if arch not in _CONVERTERS:
        raise KeyError(f'No official-checkpoint converter for arch {arch!r}; known: {sorted(_CONVERTERS)}.')
    module = importlib.import_module(_CONVERTERS[arch])
    return module.convert(official_state_dict)
