"""Patches to BasicSR's training loop: safe and exact resume, atomic checkpoints, CPU distributed training.

See :mod:`rssr_patches` for the list with the reasons; the machinery they call
lives in :mod:`rssr_utils.states` and :mod:`rssr_utils.weights`.
"""

import atexit
import os


def _load_resume_state(opt):
    """BasicSR's ``load_resume_state``: no code from the file, partial files skipped, exact resume prepared."""
    from basicsr.utils import check_resume

    from rssr_utils import states

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
    """BasicSR's ``BaseModel.save_network``, written through a temporary file (see rssr_utils.states)."""
    from basicsr.utils import get_root_logger

    from rssr_utils.states import save_with_retry
    from rssr_utils.weights import strip_module

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
    if self.opt.get('radiometry') is not None:  # plain values beside the weights; the loader reads only `params*`
        from rssr_utils.radiometry import Radiometry

        save_dict['radiometry'] = Radiometry.resolve(self.opt['radiometry']).to_dict()
    save_with_retry(save_dict, save_path, 'model', get_root_logger())


def _save_training_state(self, epoch, current_iter):
    """BasicSR's ``BaseModel.save_training_state`` plus the random states and data position, written atomically."""
    from basicsr.utils import get_root_logger

    from rssr_utils.states import resume_entries, save_with_retry

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

    from rssr_utils.states import POSITION

    self.loader = POSITION.start_epoch(self.ori_loader, log=get_root_logger().info)
    if hasattr(self, 'preload'):  # CUDAPrefetcher keeps one batch ahead
        self.preload()


def _counting_next(original):
    def next_batch(self):
        from rssr_utils.states import POSITION

        return POSITION.count(original(self))

    next_batch.__doc__ = f'{original.__qualname__} that counts the batches of the epoch (rssr_utils.states).'
    next_batch._rssr_original = original
    return next_batch


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

    from rssr_utils.weights import load_weights

    logger = get_root_logger()
    net = self.get_bare_model(net)
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    load_weights(net, load_path, param_key or 'params', strict=strict, logger=logger)


def patch_checkpoint_saving():
    """Models and training states: temporary name, fsync, rename; states also hold RNG states and data position."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.dist_util import master_only

    BaseModel.save_network = master_only(_save_network)
    BaseModel.save_training_state = master_only(_save_training_state)


def patch_exact_resume():
    """The train loop's prefetchers track the data position and restore a saved one (rssr_utils.states).

    Validation keeps the random states as it found them (:func:`_validation`, installed by
    :func:`_patch_entry_points`).
    """
    from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher

    for cls in (CPUPrefetcher, CUDAPrefetcher):
        original = getattr(cls.next, '_rssr_original', cls.next)
        cls.next = _counting_next(original)
        cls.reset = _prefetcher_reset
