"""Every change rssr makes to BasicSR, in one place.

BasicSR 1.4.2 is the newest release on PyPI; each change below says why it is
needed and for which version. Nothing here edits BasicSR's files.

* :func:`install` (runs on import, before any BasicSR import): alias
  ``torchvision.transforms.functional_tensor``. Why: BasicSR 1.4.2's
  ``basicsr.data.degradations`` imports that private module, which
  torchvision removed in 0.17.
* :func:`patch_basicsr` (run by every rssr entry point):

  - ``basicsr.train.load_resume_state``: map the saved state to the GPU only
    when there is one. Why: 1.4.2 calls ``torch.cuda.current_device()``.
  - ``basicsr.utils.options.init_dist``: ``gloo`` when no GPU is present. Why:
    1.4.2 always picks NCCL and calls ``torch.cuda.set_device``.
  - ``BaseModel.model_to_device``: DistributedDataParallel without
    ``device_ids`` on CPU. Why: 1.4.2 passes ``torch.cuda.current_device()``.
  - ``build_network`` (in ``basicsr.archs`` and the model modules that import
    it): a network option the arch does not take is named, with the options
    it accepts. Why: 1.4.2 raises a bare ``TypeError``.
  - ``BaseModel.load_network``: read weights through rssr's one loader
    (:mod:`rssr_tools.weights`: ``weights_only``, safetensors, ``param_key``
    errors that list the file's entries). Why: 1.4.2 unpickles anything and
    falls back from ``params_ema`` to ``params`` without saying so in errors.
  - ``parse_options`` (in ``basicsr.utils.options``, ``basicsr.train`` and
    ``basicsr.test``): BasicSR's ``train.py``/``test.py`` run as scripts
    (``python -m basicsr.train``, ``python basicsr/train.py``) get every patch
    made to ``basicsr.train``/``basicsr.test``, and an installed BasicSR writes
    under the current directory instead of site-packages. Why: a script is a
    fresh copy of the module in ``__main__`` that patches do not reach, and
    1.4.2 puts ``experiments/`` next to its own package folder.
  - ``BaseModel.validation``: runs on the networks without their
    DistributedDataParallel wrapper. Why: 1.4.2 validates on rank 0 only, and a
    wrapped forward broadcasts buffers (FAT has some) to ranks that are not
    validating; at the last iteration they have left, and training crashes.

``rssr_autoload`` (installed as ``rssr-autoload.pth``) runs :func:`install`
and, through :func:`rssr_tools.import_registries`, :func:`patch_basicsr` the
first time ``basicsr`` is imported, so BasicSR's own entry points get them.
"""

import functools
import importlib
import inspect
import os
import sys
import types

_LEGACY = 'torchvision.transforms.functional_tensor'
# Model modules of BasicSR 1.4.2 that bind `build_network` at import.
_BUILD_NETWORK_USERS = (
    'basicsr.archs',
    'basicsr.models.sr_model',
    'basicsr.models.srgan_model',
    'basicsr.models.esrgan_model',
    'basicsr.models.video_gan_model',
)
_ORIGINAL = {}  # BasicSR's functions that a patch wraps


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


def _load_resume_state(opt):
    """BasicSR's ``load_resume_state`` without the hard CUDA requirement."""
    import torch
    from basicsr.utils import check_resume, scandir

    state_path = opt['path'].get('resume_state')
    if opt['auto_resume']:
        state_dir = os.path.join(opt['root_path'], 'experiments', opt['name'], 'training_states')
        states = list(scandir(state_dir, suffix='state')) if os.path.isdir(state_dir) else []
        if states:
            latest = max(int(os.path.splitext(v)[0]) for v in states)
            state_path = opt['path']['resume_state'] = os.path.join(state_dir, f'{latest}.state')
    if not state_path:
        return None
    if not os.path.isfile(state_path):
        raise FileNotFoundError(
            f'Resume state {state_path} does not exist; fix path.resume_state or drop it to start from scratch.'
        )
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    # Training states hold optimizer/scheduler objects, so they are not weights-only files.
    state = torch.load(state_path, map_location=device, weights_only=False)
    check_resume(opt, state['iter'])
    return state


def _init_dist(launcher, backend='nccl', **kwargs):
    """BasicSR's ``init_dist`` falling back to ``gloo`` on machines without a GPU."""
    import torch
    import torch.distributed as dist
    from basicsr.utils import dist_util

    if torch.cuda.is_available() or launcher != 'pytorch':
        return dist_util.init_dist(launcher, backend, **kwargs)
    dist.init_process_group(backend='gloo', **kwargs)


def _model_to_device(self, net):
    """BasicSR's ``BaseModel.model_to_device`` that also wraps CPU models for DDP."""
    import torch

    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False)
        )
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


def _load_network(self, net, load_path, strict=True, param_key='params'):
    """BasicSR's ``BaseModel.load_network`` through rssr's one weight loader."""
    from basicsr.utils import get_root_logger

    from rssr_tools.weights import load_weights

    logger = get_root_logger()
    net = self.get_bare_model(net)
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    load_weights(net, load_path, param_key or 'params', strict=strict, logger=logger)


def build_network(opt):
    """BasicSR's ``build_network`` that names the option a network does not take."""
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = dict(opt)
    arch = opt.get('type')
    try:
        return _ORIGINAL['build_network'](opt)
    except TypeError as error:
        if 'unexpected keyword argument' not in str(error) or arch not in ARCH_REGISTRY:
            raise
        accepted = [p for p in inspect.signature(ARCH_REGISTRY.get(arch)).parameters if p != 'self']
        raise TypeError(
            f'network type {arch!r}: {error}. It accepts {accepted}; fix that key in the '
            'option file (network_g / network_d).'
        ) from error


# --- BasicSR's own entry points and DDP-safe validation -------------------------------------------------------------
# BasicSR's scripts that rssr serves: the pipeline function each calls parse_options from, and its module.
_SCRIPT_PIPELINES = {'train_pipeline': 'basicsr.train', 'test_pipeline': 'basicsr.test'}
_BOUND = {}  # module name -> its namespace as BasicSR bound it, before any patch


def _is_install_dir(path):
    """True for a site-packages folder (where ``python -m basicsr.train`` would put ``experiments/``)."""
    import sysconfig

    path = os.path.realpath(path)
    installs = {os.path.realpath(sysconfig.get_path(key)) for key in ('purelib', 'platlib')}
    return path in installs or os.path.basename(path) in ('site-packages', 'dist-packages')


def _same_code(a, b):
    """True when two functions (or code objects) were compiled from the same source, line numbers aside."""
    a, b = getattr(a, '__code__', a), getattr(b, '__code__', b)
    if not (isinstance(a, types.CodeType) and isinstance(b, types.CodeType)):
        return False
    if (a.co_code, a.co_names, len(a.co_consts)) != (b.co_code, b.co_names, len(b.co_consts)):
        return False
    return all(
        _same_code(x, y) if isinstance(x, types.CodeType) else (type(x) is type(y) and x == y)
        for x, y in zip(a.co_consts, b.co_consts)
    )


def _sync_script_copy(script_globals, module):
    """Give a script copy of ``module`` (BasicSR's ``train.py`` run as ``__main__``) every patch made to it.

    A name is copied when the module's value changed since BasicSR bound it and the script still holds
    BasicSR's own (the same object, or a function compiled from the same source): functions a user edited in
    their checkout's ``train.py`` stay theirs.
    """
    bound = _BOUND[module.__name__]
    for name, value in vars(module).items():
        original = bound.get(name)
        if name.startswith('__') or name not in script_globals or value is original:
            continue
        own = script_globals[name]
        if own is original or _same_code(own, original):
            script_globals[name] = value


def _resume_under(root, load_resume_state, opt):
    # The script's train_pipeline sets opt['root_path'] to its own root right after parse_options.
    opt['root_path'] = root
    return load_resume_state(opt)


def _parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options``, and the seam through which BasicSR's own scripts get rssr's changes.

    ``python -m basicsr.train`` and ``python basicsr/train.py`` run a fresh copy of ``basicsr/train.py`` as
    ``__main__``: its functions (``load_resume_state``...) are not the ones patched in ``basicsr.train``, and
    its root is the folder above BasicSR's own file, site-packages for an installed BasicSR. The first thing
    its ``train_pipeline`` (or ``test_pipeline``) calls is this function, so here the copy gets every patch
    made to the module, and an install folder as root is replaced by the current directory (BasicSR's
    documented layout: ``experiments/`` under the checkout it runs from).
    """
    caller = sys._getframe(1)
    while caller is not None and caller.f_code.co_name not in _SCRIPT_PIPELINES:
        caller = caller.f_back  # another wrapper of parse_options may sit in between
    module = sys.modules.get(_SCRIPT_PIPELINES[caller.f_code.co_name]) if caller is not None else None
    script = module is not None and caller.f_globals is not vars(module)
    if script:
        _sync_script_copy(caller.f_globals, module)
    root = os.getcwd() if _is_install_dir(root_path) else root_path
    opt, args = _ORIGINAL['parse_options'](root, is_train)
    if root != root_path:
        if opt['rank'] == 0:
            folder = 'experiments' if is_train else 'results'
            print(f'rssr: BasicSR is installed in {root_path}; writing {folder}/ under {root} instead.', flush=True)
        if script and 'load_resume_state' in caller.f_globals:
            resume = caller.f_globals['load_resume_state']
            caller.f_globals['load_resume_state'] = functools.partial(_resume_under, root, resume)
    return opt, args


def _validation(self, dataloader, current_iter, tb_logger, save_img=False):
    """BasicSR's ``BaseModel.validation`` on the networks without their DistributedDataParallel wrapper."""
    from torch.nn.parallel import DistributedDataParallel

    wrapped = {name: net for name, net in vars(self).items() if isinstance(net, DistributedDataParallel)}
    for name, net in wrapped.items():
        setattr(self, name, net.module)
    try:
        return _ORIGINAL['validation'](self, dataloader, current_iter, tb_logger, save_img)
    finally:
        for name, net in wrapped.items():
            setattr(self, name, net)


def _patch_entry_points():
    """Record BasicSR's entry modules as bound, then install ``_parse_options`` and ``_validation``."""
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    for module in (basicsr.train, basicsr.test):
        _BOUND.setdefault(module.__name__, dict(vars(module)))
    _ORIGINAL.setdefault('parse_options', basicsr.utils.options.parse_options)
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        module.parse_options = _parse_options
    _ORIGINAL.setdefault('validation', BaseModel.validation)
    BaseModel.validation = _validation


# --- patch_basicsr ----------------------------------------------------------------------------------------------------
def patch_basicsr():
    """Install the changes listed in the module docstring into BasicSR (idempotent)."""
    import basicsr.archs
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    _patch_entry_points()  # first: it records basicsr.train / basicsr.test before the patches below
    _ORIGINAL.setdefault('build_network', basicsr.archs.build_network)
    for name in _BUILD_NETWORK_USERS:
        module = importlib.import_module(name)
        if hasattr(module, 'build_network'):
            module.build_network = build_network
    basicsr.train.load_resume_state = _load_resume_state
    basicsr.utils.options.init_dist = _init_dist
    BaseModel.model_to_device = _model_to_device
    BaseModel.load_network = _load_network
