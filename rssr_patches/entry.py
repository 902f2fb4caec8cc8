"""Patches to BasicSR's entry points: safe option parsing, BasicSR's own scripts, DDP-safe validation.

See :mod:`rssr_patches` for the list with the reasons; option files are read
and checked by :mod:`rssr_utils.options`.
"""

import functools
import os
import sys
import types

_ORIGINAL = {}  # BasicSR's functions that a patch wraps


def _ordered_yaml():
    """BasicSR's ``ordered_yaml`` with PyYAML's safe loader (plain values only, key order kept)."""
    from rssr_utils.options import SafeOrderedLoader

    return SafeOrderedLoader, _ORIGINAL['ordered_yaml']()[1]


def _safe_parse_options(root_path, is_train=True):
    """BasicSR 1.4.2's ``parse_options`` with a safe YAML loader, ``--force_yml`` without ``exec``, checked options.

    The same flags and result as BasicSR's. ``--force_yml`` is applied before
    the distributed set-up and the seed (BasicSR applies it after, so a forced
    ``manual_seed`` or ``dist_params`` was shown but not used), then
    :func:`rssr_utils.options.check_options` names every bad key before
    anything is built.
    """
    import argparse
    import random

    import torch
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info

    from rssr_utils.options import apply_force_yml, check_options, load_options

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
        if opt.get('radiometry') is not None:  # rssr's datasets read it (BasicSR's ignore unknown keys)
            dataset.setdefault('radiometry', opt['radiometry'])
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

    from rssr_utils.states import rng_state, set_rng_state

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

    from rssr_utils.options import parse_value

    _ORIGINAL.setdefault('ordered_yaml', options.ordered_yaml)
    options.ordered_yaml = _ordered_yaml
    options._postprocess_yml_value = parse_value
