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
"""

import importlib
import inspect
import os
import sys

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


def patch_basicsr():
    """Install the changes listed in the module docstring into BasicSR (idempotent)."""
    import basicsr.archs
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    _ORIGINAL.setdefault('build_network', basicsr.archs.build_network)
    for name in _BUILD_NETWORK_USERS:
        module = importlib.import_module(name)
        if hasattr(module, 'build_network'):
            module.build_network = build_network
    basicsr.train.load_resume_state = _load_resume_state
    basicsr.utils.options.init_dist = _init_dist
    BaseModel.model_to_device = _model_to_device
    BaseModel.load_network = _load_network
