"""The one weight loader: every command that reads network weights goes through here.

Train and test (BasicSR's ``load_network``, see :mod:`rssr_patches`), the
benchmark, scene inference, the converters and the VGG perceptual loss all call
:func:`read_weights_file` / :func:`load_weights`, so one checkpoint gives the
same tensors everywhere.

Files:

* ``*.safetensors``: read with ``safetensors`` (no pickle at all);
* anything else: ``torch.load(weights_only=True)``, which refuses files that
  would run code on load; nothing in rssr ever loads with ``weights_only=False``
  (a pickle that needs code is refused with the way to convert it, outside rssr,
  to a plain state dict).

Containers (:func:`select_state_dict`):

* BasicSR checkpoints ``{'params': ..., 'params_ema': ...}``: the entry named
  by ``param_key`` (``param_key_g`` / ``--param-key``; default ``params`` as in
  BasicSR); a missing entry is an error that lists the entries found;
* bare state dicts (tensors at the top level): used as they are;
* the authors' checkpoints (``official=True``): bare, or under ``params``,
  ``state_dict``, ``model`` or ``net``, then mapped to our keys by
  :func:`rssr_arch.convert_official_state_dict`.

A ``module.`` prefix left by (Distributed)DataParallel is stripped.

Sidecars: ``rssr-export`` writes ``model.safetensors`` with ``model.json``
beside it (:func:`sidecar_path`): the ``network_g`` options, scale, input
range, padding, rssr version, and the model's ``bands`` and ``radiometry``
(:func:`sidecar_bands` reads them back). :func:`build_model` with ``network_opt=None``
rebuilds the network from it, so such a model needs no option file and no
pickle at all. A sidecar is checked like an option file's ``network_g``
(:func:`rssr_utils.schema.check_sidecar`) and may name no file or download.

Every network is built by :func:`build_network`, which checks its options first
(:func:`rssr_utils.schema.check_network`: types, ranges, file arguments, the
parameter count on the meta device).
"""

import inspect
import json
import os
from os import path as osp

import rssr_compat  # noqa: F401

import torch

from .torch_files import load_torch_file

# Where trainers other than BasicSR put their weights, in the order they are looked for.
OFFICIAL_CONTAINERS = ('params', 'state_dict', 'model', 'net')


class WeightsError(ValueError):
    """A weights file that cannot be used, with the file and the fix in the message."""


def _is_bare(state):
    return isinstance(state, dict) and bool(state) and all(torch.is_tensor(v) for v in state.values())


def read_weights_file(path):
    """Read a weights file to Python containers of CPU tensors without running code from it.

    Args:
        path (str): ``.safetensors``, or a PyTorch file (``.pth``, ``.pt``, ...).

    Returns:
        dict: The file's content (a state dict or a dict of state dicts).
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such weights file; check the path (to use an authors' checkpoint, "
            'convert it with scripts/convert_official_checkpoint.py or pass --official).'
        )
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device='cpu')
        except (SafetensorError, OSError) as error:
            raise WeightsError(f'{path}: not a readable safetensors file ({error}); re-export it.') from error
    return load_torch_file(
        path,
        'PyTorch checkpoint',
        WeightsError,
        '(rssr never loads with weights_only=False.) If you trust its source, convert it once in a separate '
        "Python: torch.save(torch.load(path, weights_only=False)['params'], 'plain.pth') (or save_file from "
        'safetensors.torch), then use plain.pth.',
    )


def strip_module(state):
    """The state dict without DataParallel/DistributedDataParallel's ``module.`` key prefixes."""
    return {(k[len('module.') :] if k.startswith('module.') else k): v for k, v in state.items()}


def select_state_dict(checkpoint, param_key='params', official=False, source='checkpoint'):
    """Pick the state dict inside a loaded checkpoint (see the module docstring).

    Args:
        checkpoint (dict): What :func:`read_weights_file` returned.
        param_key (str | None): BasicSR entry to use; None takes a bare state dict only.
        official (bool): Look through the authors' containers instead of ``param_key``.
        source (str): The file, for messages.

    Returns:
        dict[str, Tensor]: The state dict, ``module.`` prefixes stripped.
    """
    if _is_bare(checkpoint):
        return strip_module(checkpoint)
    if not isinstance(checkpoint, dict):
        raise WeightsError(f'{source}: holds a {type(checkpoint).__name__}, not a state dict.')
    if official:
        key = next((k for k in OFFICIAL_CONTAINERS if _is_bare(checkpoint.get(k))), None)
        if key is None:
            raise WeightsError(
                f'{source}: no state dict found under {list(OFFICIAL_CONTAINERS)}; '
                f'it holds {sorted(map(str, checkpoint))[:10]}.'
            )
        return strip_module(checkpoint[key])
    found = sorted(str(k) for k, v in checkpoint.items() if _is_bare(v))
    if param_key not in checkpoint:
        raise WeightsError(
            f'{source}: has no {param_key!r} entry; it holds {found or sorted(map(str, checkpoint))}. '
            'Set param_key_g in the option file (or --param-key) to one of them.'
        )
    if not _is_bare(checkpoint[param_key]):
        raise WeightsError(f'{source}: entry {param_key!r} is not a state dict.')
    return strip_module(checkpoint[param_key])


def checkpoint_radiometry(path):
    """The ``radiometry`` a training run saved beside the weights (a dict for ``Radiometry.resolve``), or None."""
    checkpoint = read_weights_file(path)
    value = checkpoint.get('radiometry') if isinstance(checkpoint, dict) and not _is_bare(checkpoint) else None
    return value if isinstance(value, dict) else None


def read_state_dict(path, param_key='params', official=False, arch=None):
    """Read a weights file and return the state dict for our modules.

    Args:
        path (str): Weights file.
        param_key (str): BasicSR entry to use (``params`` or ``params_ema``). Default: 'params'.
        official (bool): The authors' file: converted for ``arch`` by rssr_arch's converters.
        arch (str): Registered arch name (needed with ``official``).
    """
    state = select_state_dict(read_weights_file(path), param_key, official, source=path)
    if official:
        from rssr_arch import convert_official_state_dict

        try:
            state = convert_official_state_dict(arch, state)
        except KeyError as error:
            raise WeightsError(f'{path}: {error.args[0]}') from error
    return state


def load_weights(net, path, param_key='params', official=False, strict=True, logger=None, fallback=None):
    """Load a weights file into ``net`` (see :func:`read_state_dict`) and return ``net``.

    ``fallback``: an entry to use when the file has no ``param_key`` entry, with
    a logged notice, as BasicSR's ``load_network`` falls back from
    ``params_ema`` to ``params`` (fine-tuning with EMA from a checkpoint saved
    without it).

    With ``strict`` a file that does not fit the network is an error naming the
    file, the arch and the differing keys; otherwise the differences are logged
    (as BasicSR's ``load_network`` does) and the matching tensors loaded.
    """
    arch = type(net).__name__
    if fallback and not official:
        checkpoint = read_weights_file(path)
        if isinstance(checkpoint, dict) and param_key not in checkpoint and _is_bare(checkpoint.get(fallback)):
            if logger is not None:
                logger.info(f'Loading: {path} has no {param_key!r} entry; using {fallback!r} (as BasicSR does).')
            param_key = fallback
        state = select_state_dict(checkpoint, param_key, source=path)
    else:
        state = read_state_dict(path, param_key, official, arch)
    own = net.state_dict()
    from rssr_arch.arch_util import recorded_option_keys  # options the arch keeps itself; older files lack them

    missing = sorted(set(own) - set(state) - recorded_option_keys(net))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        text = (
            f'{path} does not fit {arch}: {len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected '
            f'{unexpected[:3]}, {len(wrong)} of other shapes {wrong[:3]}'
        )
        if strict:
            raise WeightsError(
                text + '. Check the network options (e.g. upscale, widths), param_key, or whether '
                "it is an authors' checkpoint (--official)."
            )
        if logger is not None:
            logger.warning(text + '; loading the matching tensors (strict_load_g: false).')
        state = {k: v for k, v in state.items() if k in own and k not in wrong}
    net.load_state_dict(state, strict=strict)
    return net


def write_safetensors(state, path, metadata=None):
    """Write a state dict to ``path`` (.safetensors) atomically; tensors that share memory are stored apart."""
    from safetensors.torch import save

    from rssr_utils.states import save_atomic

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    save_atomic(tensors, path, lambda obj, f: f.write(_sorted_header(save(obj, metadata=metadata))))


def _sorted_header(blob):
    """The same safetensors file with its JSON header's keys sorted: the library writes ``__metadata__`` in
    hash order, which changes between runs, so the same export gave other bytes. Offsets are unchanged."""
    size = int.from_bytes(blob[:8], 'little')
    header = json.dumps(json.loads(blob[8 : 8 + size]), separators=(',', ':'), sort_keys=True).encode()
    header += b' ' * (-len(header) % 8)  # the data stays 8-byte aligned
    return len(header).to_bytes(8, 'little') + header + blob[8 + size :]


SIDECAR_FORMAT = 'rssr-model'


def sidecar_path(weights):
    """The sidecar of a weights file: ``DIR/model.safetensors`` -> ``DIR/model.json``."""
    return osp.splitext(os.fspath(weights))[0] + '.json'


def read_sidecar(weights):
    """The sidecar written by ``rssr-export`` beside ``weights`` (see the module docstring).

    Returns:
        dict | None: Its content (``network_g``, ``scale``, ``pad_multiple``,
        ``input``, ``rssr_version``, ...), or None when there is no sidecar.
    """
    path = sidecar_path(weights)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            sidecar = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f'{path}: not a readable JSON sidecar ({error}); re-export the model.') from error
    if not isinstance(sidecar, dict) or sidecar.get('format') != SIDECAR_FORMAT:
        raise WeightsError(f'{path}: not an rssr model sidecar (no "format": "{SIDECAR_FORMAT}"); re-export the model.')
    network = sidecar.get('network_g')
    if not isinstance(network, dict) or 'type' not in network:
        raise WeightsError(f'{path}: has no network_g with a type; re-export the model.')
    from rssr_utils.schema import check_sidecar

    check_sidecar(sidecar, path)  # an OptionError (ValueError) naming the key
    return sidecar


def sidecar_bands(weights):
    """The bands and radiometry a sidecar records: ``(bands | None, Radiometry | None)``.

    ``bands`` are the 1-based file bands the model takes, in order; the radiometry (``Radiometry.to_dict()``
    as written by ``rssr-export``) is of those bands. (None, None) without a sidecar or for older sidecars.
    """
    from rssr_utils.radiometry import Radiometry

    sidecar = read_sidecar(weights) or {}
    bands, radiometry = sidecar.get('bands'), sidecar.get('radiometry')
    if bands is not None and not (isinstance(bands, list) and all(isinstance(b, int) and b > 0 for b in bands)):
        raise WeightsError(f'{sidecar_path(weights)}: bands {bands!r} is not a list of band numbers; re-export.')
    if radiometry is not None:
        radiometry = Radiometry.resolve(radiometry, where=f'{sidecar_path(weights)}: radiometry')
    return bands, radiometry


def arch_class(name):
    """The class registered as ``name`` in BasicSR's ARCH_REGISTRY (BasicSR's archs and rssr's imported).

    Also finds BasicSR's ``<name>_basicsr`` entries and rssr's old names (``Bicubic``, with a notice); an
    unknown name is a ValueError listing the registered ones.
    """
    import basicsr.archs  # noqa: F401  (registers BasicSR's archs)
    from basicsr.utils.registry import ARCH_REGISTRY

    import rssr_arch  # noqa: F401  (registers rssr's)
    from rssr_utils.schema import upgrade_names

    name = upgrade_names({'network_g': {'type': name}}, f'arch {name!r}')['network_g']['type']

    try:
        return ARCH_REGISTRY.get(name)
    except KeyError:
        raise ValueError(f'Unknown arch {name!r}; registered: {sorted(ARCH_REGISTRY.keys())}.') from None


def scale_argument(arch):
    """The name of the argument that takes the scale in ``arch`` (a class or registered name): 'upscale',
    'scale' or None."""
    cls = arch_class(arch) if isinstance(arch, str) else arch
    params = inspect.signature(cls.__init__).parameters
    return next((k for k in ('upscale', 'scale') if k in params), None)


def build_network(opt, source='option file', policy=None, key='network_g'):
    """BasicSR's ``build_network`` (``type`` + the arch's arguments), checked before anything is allocated.

    :mod:`rssr_patches` installs it in place of BasicSR's own, so every network
    BasicSR's models build goes through here too.

    Args:
        opt (dict): ``type`` and the arch's arguments (``network_g``).
        source (str): Where the options come from, for messages.
        policy (str | None): Which file arguments are allowed (see
            :func:`rssr_utils.schema.networks.check_file_arguments`); None: the
            one of the option file being run (:data:`FILE_POLICY`).
        key (str): The block's key, for messages.

    Raises:
        OptionError: one line naming the key and the fix (wrong type, unknown
        option, a file argument not allowed, more parameters than the limit).
    """
    import basicsr.archs  # noqa: F401  (registers BasicSR's archs)
    from basicsr.utils import get_root_logger

    from rssr_utils.schema import check_network, upgrade_names

    opt = upgrade_names({key: dict(opt)}, source)[key]
    cls = check_network(opt, key, source, policy or FILE_POLICY[0])
    opt.pop('type')
    net = cls(**opt)
    get_root_logger().info(f'Network [{net.__class__.__name__}] is created.')
    return net


# The file-argument policy of the option file being run ('options' or 'trusted'; rssr_patches sets it).
FILE_POLICY = ['options']


def build_model(network_opt, weights=None, param_key='params', official=False, device='cpu', policy=None):
    """Build ``network_opt`` (a ``network_g`` dict) from BasicSR's ARCH_REGISTRY and load ``weights``.

    ``policy``: the file arguments allowed (``model_options(...)['file_policy']``).
    With ``network_opt=None`` the network comes from the sidecar of ``weights``
    (:func:`read_sidecar`, no file arguments at all); a sidecar's ``pad_multiple`` wraps it in
    :class:`rssr_arch.arch_util.PaddedSR` (as SwinIR's test pads).

    Returns:
        nn.Module: The network in eval mode on ``device``. Bad network options
        are an OptionError (a ValueError) naming the key (:func:`build_network`).
    """
    pad_multiple, source = None, 'network options'
    if network_opt is None:
        sidecar = read_sidecar(weights) if weights else None
        if sidecar is None:
            raise WeightsError(
                f'{weights}: no network options: no sidecar {sidecar_path(weights or "model")} beside it. Pass '
                '-opt or --arch, or export the model with scripts/export.py (it writes the sidecar).'
            )
        network_opt, pad_multiple = sidecar['network_g'], sidecar.get('pad_multiple')
        source, policy = sidecar_path(weights), 'sidecar'
        sidecar_bands(weights)  # a damaged bands/radiometry entry is named now, not at the first scene

    net = build_network(network_opt, source, policy)
    if weights:
        load_weights(net, weights, param_key, official)
    if pad_multiple:
        from rssr_arch.arch_util import PaddedSR

        net = PaddedSR(net, pad_multiple, scale_of(network_opt, net))
    return net.eval().to(device)


def scale_of(network_opt, net=None):
    """Upscale factor of a network: its ``upscale`` (or RRDBNet's ``scale``) option or attribute; None if unknown."""
    for key in ('upscale', 'scale'):
        if network_opt.get(key):
            return int(network_opt[key])
    scale = getattr(net, 'upscale', None) or getattr(net, 'scale', None)
    return int(scale) if isinstance(scale, int) else None


def model_options(opt_path):
    """The model part of a BasicSR option file.

    Returns:
        dict: ``network_g`` (dict), ``pretrain_network_g`` (str or None),
        ``param_key_g`` (default 'params'), ``strict_load_g`` (default True),
        ``model_type``, ``name``, ``pad_multiple`` (SwinIRModel pads test
        inputs to multiples of the window; None for other models), ``radiometry``
        (the top-level ``radiometry:``, or None) and ``bands`` (the first dataset's
        1-based ``bands``, or None).
    """
    from rssr_utils.options import load_options
    from rssr_utils.schema import check_network, upgrade_names

    opt = load_options(opt_path)  # safe loader: an OptionError (ValueError) names the file and line
    if not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'{opt_path}: no network_g section (a mapping with the arch type and its options).')
    upgrade_names(opt, opt_path)
    policy = 'trusted' if opt.get('allow_file_arguments') is True else 'options'
    check_network(opt['network_g'], 'network_g', opt_path, policy)
    network = dict(opt['network_g'])
    path = opt.get('path') or {}
    return {
        'network_g': network,
        'pretrain_network_g': path.get('pretrain_network_g'),
        'param_key_g': path.get('param_key_g') or 'params',
        'strict_load_g': path.get('strict_load_g', True),
        'model_type': opt.get('model_type'),
        'name': opt.get('name'),
        'pad_multiple': network.get('window_size') if opt.get('model_type') == 'SwinIRModel' else None,
        'file_policy': policy,
        'radiometry': opt.get('radiometry'),
        'bands': next(
            (d['bands'] for d in (opt.get('datasets') or {}).values() if isinstance(d, dict) and d.get('bands')), None
        ),
    }
