"""Models of a benchmark option file: their specs, how they are built and loaded, and one checked forward."""

from os import path as osp

import torch

from rssr_arch.arch_util import pad_to_multiple
from rssr_utils.weights import build_model, load_weights, model_options


def model_spec(entry):
    """Normalise a ``models`` entry: merge the referenced test option file, then the entry's own keys."""
    spec = {
        'name': None,
        'network_g': None,
        'pretrain_network_g': None,
        'param_key_g': 'params',
        'strict_load_g': True,
        'official': False,
        'pad_multiple': None,
        'opt': entry.get('opt'),
    }
    if entry.get('opt'):
        if not osp.isfile(entry['opt']):
            raise FileNotFoundError(
                f'Test option file {entry["opt"]} (model {entry.get("name")}) not found; '
                'fix `opt:` or give `network_g:` inline.'
            )
        test_opt = model_options(entry['opt'])
        keys = ('network_g', 'name', 'pretrain_network_g', 'param_key_g', 'strict_load_g', 'pad_multiple')
        spec.update({k: test_opt[k] for k in keys})
    spec.update({k: v for k, v in entry.items() if k != 'opt'})
    if not spec['network_g'] or 'type' not in spec['network_g']:
        raise ValueError(f'Model entry {entry} needs `network_g: {{type: ...}}` or `opt: <test option file>`.')
    spec['name'] = spec['name'] or spec['network_g']['type']
    return spec


def count_parameters(net):
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in net.parameters())


def build_benchmark_model(spec, device='cpu', load=True):
    """Build ``spec['network_g']`` and load its checkpoint through :mod:`rssr_utils.weights`.

    Returns:
        tuple[nn.Module, str, str]: The network in eval mode, its weights status
        (``trained``, ``random init`` or ``parameter-free``) and a note.
    """
    torch.manual_seed(0)  # random-init rows are reproducible
    net = build_model(spec['network_g'], device=device)
    status, note = ('parameter-free' if count_parameters(net) == 0 else 'random init'), ''
    checkpoint = spec.get('pretrain_network_g')
    if status == 'random init' and not checkpoint:
        note = 'no checkpoint given (pretrain_network_g): cost only'
    if checkpoint and load:
        if osp.isfile(checkpoint):
            load_weights(net, checkpoint, spec['param_key_g'], spec['official'], strict=spec['strict_load_g'])
            status = 'trained'
        else:
            note = f'no checkpoint at {checkpoint}: cost only'
    return net, status, note


def super_resolve(net, lq, scale, pad_multiple=None):
    """``net(lq)`` checked for size; with ``pad_multiple`` reflect-padded and cropped like SwinIRModel.test."""
    height, width = lq.shape[-2:]
    if pad_multiple:
        lq = pad_to_multiple(lq, pad_multiple)
    out = net(lq)
    if not torch.is_tensor(out):
        raise TypeError(f'{type(net).__name__} returned {type(out).__name__} in eval mode; expected one tensor.')
    expected = (lq.shape[-2] * scale, lq.shape[-1] * scale)
    if tuple(out.shape[-2:]) != expected or out.shape[:2] != lq.shape[:2]:
        raise ValueError(
            f'output {tuple(out.shape)} for input {tuple(lq.shape)}; expected x{scale} '
            f'{(*lq.shape[:2], *expected)} (does this arch support upscale {scale}?)'
        )
    return out[..., : height * scale, : width * scale]
