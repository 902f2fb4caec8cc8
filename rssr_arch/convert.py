"""Load the authors' released checkpoints into our modules.

The official key names live only in the per-arch converter modules
(``convert_<arch>.py``); each exposes ``convert(state_dict) -> state_dict`` that
maps every official key to ours or drops it on purpose (modules the official
code builds but never uses in ``forward``), and raises on anything unknown.
"""

import importlib

import torch

_CONVERTERS = {'TSFNet': 'rssr_arch.convert_tsfnet', 'FAT': 'rssr_arch.convert_fat'}

# Containers the official trainers and BasicSR wrap weights in.
_WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net')


def unwrap_checkpoint(checkpoint):
    """Return the bare ``{key: tensor}`` dict inside a saved checkpoint.

    Accepts a state dict, or a dict holding one under ``params_ema``/``params``
    (BasicSR), ``state_dict``/``model``/``net`` (other trainers); strips a
    ``module.`` prefix left by (Distributed)DataParallel.
    """
    state = checkpoint
    while isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
        key = next((k for k in _WRAPPER_KEYS if k in state), None)
        if key is None:
            raise ValueError(
                f'No state dict found in checkpoint with keys {sorted(state)[:10]}; '
                f'expected tensors or one of {_WRAPPER_KEYS}.'
            )
        state = state[key]
    return {(k[len('module.') :] if k.startswith('module.') else k): v for k, v in state.items()}


def convert_official_state_dict(arch, official_state_dict):
    """Map an official checkpoint of ``arch`` ('TSFNet' or 'FAT') to our key names.

    Args:
        arch (str): Registered arch name.
        official_state_dict (dict): The official weights, bare or wrapped (see
            :func:`unwrap_checkpoint`).

    Returns:
        dict: A state dict for ``ARCH_REGISTRY.get(arch)`` with ``strict=True``.
    """
    if arch not in _CONVERTERS:
        raise KeyError(f'No official-checkpoint converter for arch {arch!r}; known: {sorted(_CONVERTERS)}.')
    module = importlib.import_module(_CONVERTERS[arch])
    return module.convert(unwrap_checkpoint(official_state_dict))
