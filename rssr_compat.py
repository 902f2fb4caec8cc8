"""Every change rssr makes to BasicSR, in one place.

BasicSR 1.4.2 is the newest release on PyPI; each change below says why it is
needed and for which version. Nothing here edits BasicSR's files.

* :func:`install` (runs on import, before any BasicSR import): alias
  ``torchvision.transforms.functional_tensor``. Why: BasicSR 1.4.2's
  ``basicsr.data.degradations`` imports that private module, which
  torchvision removed in 0.17.
* :func:`patch_basicsr` (run by every rssr entry point):

  - ``basicsr.train.load_resume_state``: read the state with
    ``weights_only=True`` (:mod:`rssr_tools.states`), on CPU or GPU;
    ``--auto_resume`` takes the newest ``<iter>.state`` that loads and says
    what it skipped; prepare the exact resume. Why: 1.4.2 unpickles anything,
    takes the highest number even from a partial file, fails on any other
    ``*.state`` name, and calls ``torch.cuda.current_device()``.
  - ``basicsr.utils.options.init_dist``: ``gloo`` when no GPU is present, and
    the process group is destroyed at exit. Why: 1.4.2 always picks NCCL and
    calls ``torch.cuda.set_device``, and never destroys the group: a gloo rank
    that leaves while rank 0 still validates can abort in interpreter shutdown
    (``terminate called without an active exception``).
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
    ``basicsr.test``), ``ordered_yaml`` and ``_postprocess_yml_value``
    (:func:`patch_option_parsing`, :func:`_patch_entry_points`): option files
    are read with PyYAML's safe loader and ``--force_yml`` values as YAML, the
    options are checked at start-up (:mod:`rssr_tools.options`); BasicSR's
    ``train.py``/``test.py`` run as scripts (``python -m basicsr.train``,
    ``python basicsr/train.py``) get every patch made to
    ``basicsr.train``/``basicsr.test``, and an installed BasicSR writes under
    the current directory instead of site-packages. Why: 1.4.2 uses the unsafe
    loader (a file can run code), applies ``--force_yml`` with
    ``exec``/``eval``, reports bad options late and without their key; a script
    is a fresh copy of the module in ``__main__`` that patches do not reach, and
    1.4.2 puts ``experiments/`` next to its own package folder.
  - :func:`patch_checkpoint_saving`: ``BaseModel.save_network`` and
    ``save_training_state`` write to ``<name>.tmp``, fsync and rename; states
    also hold the random states and data position. Why: 1.4.2 writes in place
    (kill -9 leaves partial files under final names) and saves no RNG state.
  - :func:`patch_exact_resume`: ``CPUPrefetcher``/``CUDAPrefetcher`` ``reset``
    and ``next`` track the data position and, on resume, move the first epoch
    to the saved batch with the saved random states; ``BaseModel.validation``
    (:func:`_validation`) leaves the random states as it found them. Why: 1.4.2 restarts the saved
    epoch from its first batch with fresh random states, and a validation
    shifts the training's random numbers (its data loader draws a seed).
  - ``BaseModel.validation`` (:func:`_patch_entry_points`) also runs on the
    networks without their DistributedDataParallel wrapper. Why: 1.4.2
    validates on rank 0 only, and a wrapped forward broadcasts buffers (FAT has
    some) to ranks that are not validating; at the last iteration they have
    left, and training crashes.

``rssr_autoload`` (installed as ``rssr-autoload.pth``) runs :func:`install`
and, through :func:`rssr_tools.import_registries`, :func:`patch_basicsr` the
first time ``basicsr`` is imported, so BasicSR's own entry points get them.
"""

import atexit
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
    """BasicSR's ``load_resume_state``: no code from the file, partial files skipped, exact resume prepared."""
    from basicsr.utils import check_resume

    from rssr_tools import states

    states.POSITION.clear()
    state_path, state = opt['path'].get('resume_state'), None
    if opt['auto_resume']:
        experiment = os.path.join(opt['root_path'], 'experiments', opt['name'])
        ignored = opt['path'].get('ignore_resume_networks') or ()
        networks = [k[len('network_') :] for k in opt if k.startswith('network_') and k not in ignored]
        found, state = states.find_resume_state(
            os.path.join(experiment, 'training_states'), os.path.join(experiment, 'models'), networks
        )
        if found:
            print(f'auto_resume: resuming from {found}.', flush=True)
            state_path = opt['path']['resume_state'] = found
        elif state_path:
            print(f'auto_resume: no usable state under {experiment}; resuming from {state_path}.', flush=True)
    if state is None and state_path:
        state = states.read_training_state(state_path)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    # Each rank draws its own random numbers; only rank 0's are saved, so ranks keep their seeds.
    if not states.POSITION.resume_from(state, restore_rng=opt.get('world_size', 1) == 1):
        print(
            f'{state_path} holds no random states or data position (BasicSR or an older rssr wrote it): training '
            f'goes on from the start of epoch {state["epoch"]}, not exactly where it stopped.',
            flush=True,
        )
    return state


def _save_network(self, net, net_label, current_iter, param_key='params'):
    """BasicSR's ``BaseModel.save_network``, written through a temporary file (see rssr_tools.states)."""
    from basicsr.utils import get_root_logger

    from rssr_tools.states import save_with_retry
    from rssr_tools.weights import strip_module

    label = 'latest' if current_iter == -1 else current_iter
    save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(param_keys):
        raise ValueError('save_network: one param_key per network.')
    save_dict = {}
    for net_, key in zip(nets, param_keys):
        state_dict = strip_module(self.get_bare_model(net_).state_dict())
        save_dict[key] = {k: v.cpu() for k, v in state_dict.items()}
    save_with_retry(save_dict, save_path, 'model', get_root_logger())


def _save_training_state(self, epoch, current_iter):
    """BasicSR's ``BaseModel.save_training_state`` plus the random states and data position, written atomically."""
    from basicsr.utils import get_root_logger

    from rssr_tools.states import resume_entries, save_with_retry

    if current_iter == -1:
        return
    state = {
        'epoch': epoch,
        'iter': current_iter,
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers],
    }
    state.update(resume_entries(epoch))
    save_path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
    save_with_retry(state, save_path, 'training state', get_root_logger())


def _prefetcher_reset(self):
    """The prefetchers' ``reset`` (each epoch start): track the data position and restore a saved one."""
    from basicsr.utils import get_root_logger

    from rssr_tools.states import POSITION

    self.loader = POSITION.start_epoch(self.ori_loader, log=get_root_logger().info)
    if hasattr(self, 'preload'):  # CUDAPrefetcher keeps one batch ahead
        self.preload()


def _counting_next(original):
    def next_batch(self):
        from rssr_tools.states import POSITION

        return POSITION.count(original(self))

    next_batch.__doc__ = f'{original.__qualname__} that counts the batches of the epoch (rssr_tools.states).'
    next_batch._rssr_original = original
    return next_batch


def _ordered_yaml():
    """BasicSR's ``ordered_yaml`` with PyYAML's safe loader (plain values only, key order kept)."""
    from rssr_tools.options import SafeOrderedLoader

    return SafeOrderedLoader, _ORIGINAL['ordered_yaml']()[1]


def _safe_parse_options(root_path, is_train=True):
    """BasicSR 1.4.2's ``parse_options`` with a safe YAML loader, ``--force_yml`` without ``exec``, checked options.

    The same flags and result as BasicSR's. ``--force_yml`` is applied before
    the distributed set-up and the seed (BasicSR applies it after, so a forced
    ``manual_seed`` or ``dist_params`` was shown but not used), then
    :func:`rssr_tools.options.check_options` names every bad key before
    anything is built.
    """
    import argparse
    import random

    import torch
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info

    from rssr_tools.options import apply_force_yml, check_options, load_options

    parser = argparse.ArgumentParser()
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument(
        '--force_yml', nargs='+', default=None, help='Force to update yml files. Examples: train:ema_decay=0.999'
    )
    args = parser.parse_args()
    opt = load_options(args.opt, ordered=True)
    apply_force_yml(opt, args.force_yml)
    check_options(opt, is_train, source=args.opt)

    import basicsr.utils.options as options

    if args.launcher == 'none':
        opt['dist'] = False
        print('Disable distributed.', flush=True)
    else:
        opt['dist'] = True
        if args.launcher == 'slurm' and 'dist_params' in opt:
            options.init_dist(args.launcher, **opt['dist_params'])
        else:
            options.init_dist(args.launcher)
    opt['rank'], opt['world_size'] = get_dist_info()

    seed = opt.get('manual_seed')
    if seed is None:
        seed = opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(seed + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt['num_gpu'] == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]  # val_1, val_2, test_1, ...
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = os.path.expanduser(dataset[key])
    for key, val in opt['path'].items():
        if val is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = os.path.expanduser(val)

    if is_train:
        experiments_root = os.path.join(root_path, 'experiments', opt['name'])
        opt['path']['experiments_root'] = experiments_root
        opt['path']['models'] = os.path.join(experiments_root, 'models')
        opt['path']['training_states'] = os.path.join(experiments_root, 'training_states')
        opt['path']['log'] = experiments_root
        opt['path']['visualization'] = os.path.join(experiments_root, 'visualization')
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = os.path.join(root_path, 'results', opt['name'])
        opt['path']['results_root'] = results_root
        opt['path']['log'] = results_root
        opt['path']['visualization'] = os.path.join(results_root, 'visualization')
    return opt, args


def _destroy_process_group():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _init_dist(launcher, backend='nccl', **kwargs):
    """BasicSR's ``init_dist`` falling back to ``gloo`` on machines without a GPU; the group is destroyed at exit."""
    import torch
    import torch.distributed as dist
    from basicsr.utils import dist_util

    # While the interpreter is whole: gloo's worker threads must not outlive it (no barrier: a rank that fails
    # must not wait for the others).
    atexit.register(_destroy_process_group)
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
    opt, args = _safe_parse_options(root, is_train)
    if root != root_path:
        if opt['rank'] == 0:
            folder = 'experiments' if is_train else 'results'
            print(f'rssr: BasicSR is installed in {root_path}; writing {folder}/ under {root} instead.', flush=True)
        if script and 'load_resume_state' in caller.f_globals:
            resume = caller.f_globals['load_resume_state']
            caller.f_globals['load_resume_state'] = functools.partial(_resume_under, root, resume)
    return opt, args


def _validation(self, dataloader, current_iter, tb_logger, save_img=False):
    """BasicSR's ``BaseModel.validation`` on the networks without their DistributedDataParallel wrapper,
    leaving the random states as it found them."""
    from torch.nn.parallel import DistributedDataParallel

    from rssr_tools.states import rng_state, set_rng_state

    # Validation runs after a save; its data loaders draw from the global RNG, so without this the training
    # after a validation would depend on it and a resumed run (no validation at its start) would differ.
    saved = rng_state()
    wrapped = {name: net for name, net in vars(self).items() if isinstance(net, DistributedDataParallel)}
    for name, net in wrapped.items():
        setattr(self, name, net.module)
    try:
        return _ORIGINAL['validation'](self, dataloader, current_iter, tb_logger, save_img)
    finally:
        for name, net in wrapped.items():
            setattr(self, name, net)
        set_rng_state(saved)


def _patch_entry_points():
    """Record BasicSR's entry modules as bound, then install ``_parse_options`` and ``_validation``."""
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    for module in (basicsr.train, basicsr.test):
        _BOUND.setdefault(module.__name__, dict(vars(module)))
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        module.parse_options = _parse_options
    _ORIGINAL.setdefault('validation', BaseModel.validation)
    BaseModel.validation = _validation


def patch_option_parsing():
    """Option files through the safe loader and ``--force_yml`` without ``exec`` (see :func:`_safe_parse_options`)."""
    import basicsr.utils.options as options

    from rssr_tools.options import parse_value

    _ORIGINAL.setdefault('ordered_yaml', options.ordered_yaml)
    options.ordered_yaml = _ordered_yaml
    options._postprocess_yml_value = parse_value


def patch_checkpoint_saving():
    """Models and training states: temporary name, fsync, rename; states also hold RNG states and data position."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.dist_util import master_only

    BaseModel.save_network = master_only(_save_network)
    BaseModel.save_training_state = master_only(_save_training_state)


def patch_exact_resume():
    """The train loop's prefetchers track the data position and restore a saved one (rssr_tools.states).

    Validation keeps the random states as it found them (:func:`_validation`, installed by
    :func:`_patch_entry_points`).
    """
    from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher

    for cls in (CPUPrefetcher, CUDAPrefetcher):
        original = getattr(cls.next, '_rssr_original', cls.next)
        cls.next = _counting_next(original)
        cls.reset = _prefetcher_reset


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
    patch_option_parsing()
    patch_checkpoint_saving()
    patch_exact_resume()
