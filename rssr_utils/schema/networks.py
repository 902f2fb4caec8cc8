"""Network options (``network_g``, ``network_d``, a sidecar's ``network_g``): types, file arguments, size.

:func:`check_network` runs before a network is built, wherever one is built
from options (:func:`rssr_utils.weights.build_network` is the one builder):

1. the options against the arch's struct (:mod:`.calls`: types, ranges,
   unknown and missing keys);
2. file arguments: a parameter named like a file (``*_path``, ``*_file``,
   ``*_dir``, ``*_url``, ``load_path``...; BasicSR 1.4.2's SpyNet
   ``load_path``, BasicVSR/IconVSR/BasicVSR++ ``spynet_path`` and
   ``edvr_path``, TOFlow's SpyNet, DFDNet ``dict_path``) makes the arch read
   that file when built, and an arch of :data:`DOWNLOADS` fetches weights from
   the network. In an option file a file argument may name a file under
   ``experiments/pretrained_models/`` (BasicSR's documented place, relative,
   no ``..``); anything else, and the downloading archs, need the top-level
   ``allow_file_arguments: true`` (a trusted local run). A sidecar may name
   none of them, whatever it says;
3. size: the network is built on torch's ``meta`` device (no memory) with
   hooks that stop it as soon as it registers more than
   :data:`MAX_PARAMETERS` parameters or :data:`MAX_MODULES` modules, so
   ``num_block: 1000000`` is refused by name in a fraction of a second.
"""

import os
import re
from contextlib import contextmanager

from .base import OptionError, convert

MAX_PARAMETERS = 1_000_000_000  # parameters and buffers (4 GB in float32)
MAX_MODULES = 10_000  # the largest BasicSR and rssr archs have a few thousand
# Archs that download weights when built (torchvision's pretrained VGG19 unless BasicSR's local copy exists).
DOWNLOADS = frozenset({'VGGFeatureExtractor', 'DFDNet'})
TRUSTED_FOLDER = 'experiments/pretrained_models/'
_FILE_NAME = re.compile(r'(^|_)(path|file|dir|url|ckpt|checkpoint)$')
_NOT_FILES = frozenset({'drop_path'})  # SwinIR's stochastic depth rate


class _TooLarge(Exception):
    pass


def is_file_argument(name):
    """True for a parameter named like a file, folder or URL (see the module docstring)."""
    return name not in _NOT_FILES and bool(_FILE_NAME.search(name))


def _trusted_path(value):
    if not isinstance(value, str):
        return False
    parts = value.replace('\\', '/').split('/')
    return value.replace('\\', '/').startswith(TRUSTED_FOLDER) and '..' not in parts and not os.path.isabs(value)


def check_file_arguments(key, options, type_name, source, policy):
    """Refuse file arguments and downloading archs/losses as ``policy`` says.

    Args:
        key (str): Dotted key of the block, for messages (``network_g``).
        options (dict): The block's options without ``type``.
        type_name (str): The registered type.
        source (str): The file, for messages.
        policy (str): ``'sidecar'`` (none), ``'options'`` (files under
            :data:`TRUSTED_FOLDER`) or ``'trusted'`` (anything:
            ``allow_file_arguments: true``).
    """
    if policy == 'trusted':
        return
    how = (
        'a model sidecar may not name files or downloads; re-export the model with a network that needs none'
        if policy == 'sidecar'
        else 'set allow_file_arguments: true at the top of the option file if you trust it (a local run)'
    )
    if type_name in DOWNLOADS:
        raise OptionError(f'{source}: {key}.type: {type_name} downloads weights when built; {how}')
    for name, value in options.items():
        if value is None or value == '' or not is_file_argument(name):
            continue
        if policy == 'options' and _trusted_path(value):
            continue
        raise OptionError(
            f'{source}: {key}.{name}: {value!r} names a file that {type_name} would read when built; {how}'
            + ('' if policy == 'sidecar' else f' (or put the file under {TRUSTED_FOLDER})')
        )


@contextmanager
def _bounded_build():
    """Count parameters, buffers and modules as they are registered; stop past the limits."""
    import torch.nn.modules.module as module

    counts = {'tensors': 0, 'modules': 0}

    def on_tensor(_module, _name, tensor):
        if tensor is not None:
            counts['tensors'] += tensor.numel()
            if counts['tensors'] > MAX_PARAMETERS:
                raise _TooLarge(f'more than {MAX_PARAMETERS:,} parameters')

    def on_module(_module, _name, _child):
        counts['modules'] += 1
        if counts['modules'] > MAX_MODULES:
            raise _TooLarge(f'more than {MAX_MODULES:,} layers')

    handles = [
        module.register_module_parameter_registration_hook(on_tensor),
        module.register_module_buffer_registration_hook(on_tensor),
        module.register_module_module_registration_hook(on_module),
    ]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def _meta_factories():
    """A torch function mode that puts tensors made by the factories layers allocate with (``empty``,
    ``zeros``, ``randn``...) on the meta device and leaves the rest (``arange``, ``linspace``) on the CPU, for
    constructors that read values back (SwinIR calls ``.item()`` on a ``linspace``)."""
    import torch
    from torch.overrides import TorchFunctionMode

    factories = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint}

    class MetaFactories(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func in factories:
                kwargs['device'] = 'meta'
            return func(*args, **kwargs)

    return MetaFactories()


def count_parameters(cls, options, key, source):
    """Build ``cls(**options)`` on the meta device (no memory) and return its parameter count.

    Raises :class:`OptionError` naming ``key`` when the network passes the limits
    or cannot be built with these options.
    """
    import torch

    try:
        try:
            with _bounded_build(), torch.device('meta'):
                net = cls(**options)
        except (RuntimeError, NotImplementedError) as error:
            if 'meta' not in str(error).lower():
                raise
            with _bounded_build(), _meta_factories():
                net = cls(**options)
    except _TooLarge as error:
        raise OptionError(
            f'{source}: {key}: {cls.__name__} with these options has {error}; make it smaller '
            '(num_block, num_feat, embed_dim, depths...)'
        ) from None
    except NotImplementedError:
        return None  # the constructor computes on its tensors (meta has no values); sizes were bounded by type
    except Exception as error:  # the constructor refused the values (a bad combination): name it
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if 'meta' in first.lower():
            return None
        raise OptionError(f'{source}: {key}: {cls.__name__} cannot be built with these options ({first})') from None
    return sum(p.numel() for p in net.parameters())


def check_network(net_opt, key='network_g', source='option file', policy='options', union=None):
    """Check a network block before anything is built (see the module docstring); return its type's class.

    Args:
        net_opt (dict): ``type`` and the arch's arguments.
        key (str): Where the block is (``network_g``), for messages.
        source (str): The file, for messages.
        policy (str): See :func:`check_file_arguments`.
        union: The struct union of the registered archs (:func:`.arch_union`).
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    from . import arch_union, registered
    from .calls import parameters

    if not isinstance(net_opt, dict):
        raise OptionError(f'{source}: {key}: expected a mapping with the arch type and its options')
    type_name = net_opt.get('type')
    cls = registered(ARCH_REGISTRY, type_name)
    options = {k: v for k, v in net_opt.items() if k != 'type'}
    if cls is not None:
        named, takes_any = parameters(cls)
        unknown = [k for k in options if k not in named]
        if unknown and not takes_any:
            raise OptionError(
                f'{source}: {key}.{unknown[0]}: {cls.__name__} takes no such option; it takes {sorted(named)}'
            )
    convert(net_opt, union or arch_union(), key, source)
    check_file_arguments(key, options, type_name, source, policy)
    if type_name not in DOWNLOADS:  # their size is fixed; building them would download
        # Weights are not needed to count: the files named are not read here.
        count_parameters(cls, {k: None if is_file_argument(k) else v for k, v in options.items()}, key, source)
    return cls
