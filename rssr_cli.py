"""Entry points: ``rssr-train``, ``rssr-test``, ``rssr-infer`` and ``scripts/*.py``.

They run BasicSR's own pipelines with every rssr registry loaded, with
``experiments/``, ``results/`` and ``tb_logger/`` under the current directory,
and make three BasicSR 1.4.2 code paths work without CUDA:

* resuming (``--auto_resume`` / ``path.resume_state``) maps the saved state to
  the GPU only when there is one;
* ``--launcher pytorch`` initialises ``gloo`` when no GPU is present (BasicSR
  always picks NCCL and calls ``torch.cuda.set_device``);
* DistributedDataParallel wraps CPU models without ``device_ids``.

A network option the arch does not take is reported with the arch's accepted
options instead of a bare ``TypeError``.
"""

import os
import sys

import rssr_compat  # noqa: F401  (before basicsr)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import rssr_arch  # noqa: F401,E402  (register archs, losses, datasets, models)
import rssr_data  # noqa: F401,E402
import rssr_loss  # noqa: F401,E402
import rssr_model  # noqa: F401,E402


def _load_resume_state(opt):
    """BasicSR's ``load_resume_state`` without the hard CUDA requirement."""
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
    from basicsr.utils import dist_util

    if torch.cuda.is_available() or launcher != 'pytorch':
        return dist_util.init_dist(launcher, backend, **kwargs)
    dist.init_process_group(backend='gloo', **kwargs)


def _model_to_device(self, net):
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False)
        )
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


def build_network(opt):
    """BasicSR's ``build_network`` that names the option a network does not take."""
    import inspect

    from basicsr.archs import build_network as basicsr_build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = dict(opt)
    arch = opt.get('type')
    try:
        return basicsr_build_network(opt)
    except TypeError as error:
        if 'unexpected keyword argument' not in str(error) or arch not in ARCH_REGISTRY:
            raise
        accepted = [p for p in inspect.signature(ARCH_REGISTRY.get(arch)).parameters if p != 'self']
        raise TypeError(
            f'network type {arch!r}: {error}. It accepts {accepted}; fix that key in the '
            'option file (network_g / network_d).'
        ) from error


def patch_basicsr():
    """Install the CPU-capable resume/distributed code paths into BasicSR (idempotent)."""
    import basicsr.models.sr_model
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    basicsr.train.load_resume_state = _load_resume_state
    basicsr.utils.options.init_dist = _init_dist
    basicsr.models.sr_model.build_network = build_network
    BaseModel.model_to_device = _model_to_device


def _root_path():
    return os.path.abspath(os.getcwd())


def train():
    """``rssr-train -opt X.yml [--launcher pytorch] [--auto_resume] [--debug] [--force_yml k=v]``."""
    from basicsr.train import train_pipeline

    patch_basicsr()
    train_pipeline(_root_path())


def test():
    """``rssr-test -opt X.yml``: BasicSR's test pipeline with rssr's registries."""
    from basicsr.test import test_pipeline

    patch_basicsr()
    test_pipeline(_root_path())


def infer(argv=None):
    """``rssr-infer``: tiled super-resolution of whole scenes (see ``scripts/infer.py``)."""
    from rssr_model.tiled_inference import main

    return main(sys.argv[1:] if argv is None else argv)


def demo(opt_path=None):
    """``rssr-demo``: write the offline demo data set, report bicubic, then train on it."""
    import numpy as np
    import yaml
    from basicsr.metrics import calculate_psnr
    from basicsr.utils.matlab_functions import imresize

    from rssr_data.demo import make_demo_dataset

    opt_path = opt_path or os.path.join(os.path.dirname(os.path.abspath(__file__)), 'options', 'train_demo_x4.yml')
    if not os.path.isfile(opt_path):
        raise FileNotFoundError(
            f'Demo option file {opt_path} not found; run from the rssr checkout (python scripts/demo.py) or pass -opt.'
        )
    with open(opt_path) as f:
        opt = yaml.safe_load(f)
    val = opt['datasets']['val']
    root = os.path.dirname(os.path.dirname(val['dataroot_gt']))
    make_demo_dataset(root, scale=opt['scale'])

    import cv2

    scale = opt['scale']
    names = sorted(os.listdir(val['dataroot_gt']))
    psnrs = []
    for name in names:
        hr = cv2.imread(os.path.join(val['dataroot_gt'], name))
        lr = cv2.imread(os.path.join(val['dataroot_lq'], name)).astype(np.float64) / 255.0
        sr = np.clip(np.round(imresize(lr, scale) * 255), 0, 255)
        psnrs.append(calculate_psnr(sr, hr, crop_border=scale))
    print(
        f'Bicubic baseline on {val["name"]}: PSNR {np.mean(psnrs):.2f} dB (RGB, crop {scale}); '
        'compare with the validation PSNR logged below.',
        flush=True,
    )

    sys.argv = [sys.argv[0], '-opt', opt_path] + sys.argv[1:]
    train()
