"""RSSRModel: deep supervision over multi-output nets, the local-loss slot, option checking."""

import re

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

import rssr_model  # noqa: F401
from rssr_model.rssr_model import RSSRModel
from tests.helpers.options import pytorch_init


@ARCH_REGISTRY.register()
class TwoOutputTestNet(nn.Module):
    """final = a * up(x), aux = b * up(x): one scalar parameter per output."""

    def __init__(self, upscale=2):
        super().__init__()
        self.upscale = upscale
        self.a = nn.Parameter(torch.tensor(0.5))
        self.b = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        up = F.interpolate(x, scale_factor=self.upscale, mode='nearest')
        return (self.a * up, self.b * up) if self.training else self.a * up


def make_model(tmp_path, network=None, scale=2, val=None, **train):
    """A training RSSRModel of ``network`` (default TwoOutputTestNet) with ``train`` options; the ``val`` section."""
    train.setdefault('pixel_opt', dict(type='L1Loss', loss_weight=1.0))
    train.setdefault('optim_g', dict(type='Adam', lr=0.1))
    train.setdefault('scheduler', dict(type='MultiStepLR', milestones=[10], gamma=0.5))
    opt = dict(
        name='t',
        model_type='RSSRModel',
        scale=scale,
        num_gpu=0,
        dist=False,
        is_train=True,
        rank=0,
        world_size=1,
        network_g=network or dict(type='TwoOutputTestNet', upscale=scale),
        train=dict(total_iter=1, **train),
        path=dict(pretrain_network_g=None, models=str(tmp_path), training_states=str(tmp_path)),
        val=val,
    )
    return RSSRModel(opt)


def step(model):
    torch.manual_seed(0)
    model.feed_data({'lq': torch.rand(1, 3, 4, 4), 'gt': torch.rand(1, 3, 8, 8)})
    before = {k: v.detach().clone() for k, v in model.net_g.named_parameters()}
    model.optimize_parameters(1)
    after = dict(model.net_g.named_parameters())
    return {k: not torch.equal(before[k], after[k].detach()) for k in before}


def test_every_output_is_supervised_by_default(tmp_path):
    model = make_model(tmp_path)
    moved = step(model)
    assert moved == {'a': True, 'b': True}
    assert set(model.log_dict) == {'l_pix', 'l_pix_aux1'}
    assert model.output.shape == (1, 3, 8, 8)


def test_output_weights_scale_each_output(tmp_path):
    model = make_model(tmp_path, output_weights=[1.0, 0.0])
    assert step(model) == {'a': True, 'b': False}
    assert set(model.log_dict) == {'l_pix'}

    # A weight w multiplies that output's gradient by w (checked with SGD, lr 1).
    model = make_model(tmp_path, output_weights=[1.0, 0.25], optim_g=dict(type='SGD', lr=1.0))
    net = model.net_g
    lq, gt = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)
    final, aux = net(lq)
    grad_b = torch.autograd.grad(0.25 * F.l1_loss(aux, gt), net.b)[0]
    b0 = net.b.detach().clone()
    model.feed_data({'lq': lq, 'gt': gt})
    model.optimize_parameters(1)
    assert torch.allclose(net.b.detach(), b0 - grad_b, atol=1e-6)


def test_local_slot_and_any_torch_optimizer(tmp_path):
    model = make_model(tmp_path, local_opt=dict(type='MSELoss', loss_weight=0.1), optim_g=dict(type='AdamW', lr=0.1))
    assert isinstance(model.optimizer_g, torch.optim.AdamW)
    step(model)
    assert {'l_pix', 'l_local', 'l_pix_aux1', 'l_local_aux1'} == set(model.log_dict)


def test_bad_options_are_named(tmp_path):
    with pytest.raises(KeyError, match='pixle_opt'):
        make_model(tmp_path, pixle_opt=dict(type='L1Loss'))
    with pytest.raises(ValueError, match='NotAnOptimizer'):
        make_model(tmp_path, optim_g=dict(type='NotAnOptimizer', lr=0.1))
    model = make_model(tmp_path, output_weights=[1.0])
    with pytest.raises(ValueError, match='output_weights has 1 entries but the network returns 2'):
        step(model)


def test_validation_uses_the_final_output(tmp_path):
    model = make_model(tmp_path)
    model.feed_data({'lq': torch.ones(1, 3, 4, 4)})
    model.test()
    assert torch.allclose(model.output, torch.full((1, 3, 8, 8), 0.5))


def _model_with_tile(tmp_path, tile):
    network = dict(type='MSRResNet', num_feat=8, num_block=1, upscale=4)
    return make_model(tmp_path, network, scale=4, val=dict(tile=tile))


def test_tiled_test_equals_the_whole_image_in_float(tmp_path):
    torch.manual_seed(0)
    whole = _model_with_tile(tmp_path, None)
    tiled = _model_with_tile(tmp_path, dict(size=32, overlap=24, batch_size=2))  # fades 6 LR px > radius 5
    pytorch_init(whole.net_g)  # MSRResNet's own init (x0.1) would hide the seams
    tiled.net_g.load_state_dict(whole.net_g.state_dict())
    lq = torch.rand(2, 3, 44, 58)
    for model in (whole, tiled):
        model.feed_data({'lq': lq})
        model.test()
    assert tiled.output.shape == (2, 3, 176, 232)
    torch.testing.assert_close(tiled.output, whole.output, rtol=0, atol=1e-5)
    # A fade narrower than the receptive field shows the seams: the comparison can fail.
    narrow = _model_with_tile(tmp_path, dict(size=32, overlap=4))
    narrow.net_g.load_state_dict(whole.net_g.state_dict())
    narrow.feed_data({'lq': lq})
    narrow.test()
    assert (narrow.output - whole.output).abs().max() > 1e-3


def test_tiled_validation_keeps_the_training_mode(tmp_path):
    model = make_model(tmp_path, val=dict(tile=dict(size=3)))
    model.feed_data({'lq': torch.ones(1, 3, 5, 4)})
    model.test()
    assert torch.allclose(model.output, torch.full((1, 3, 10, 8), 0.5))  # the final output only
    assert model.net_g.training


@pytest.mark.parametrize(
    'tile, message',
    [
        (dict(overlap=0), 'give {size'),
        (dict(size=32, overlap=0, stride=8), 'give {size'),
        (dict(size=32, overlap=32), 'overlap 32 must be'),
        (dict(size=32, batch_size=0), 'batch_size at least 1'),
        (dict(size='32'), 'must be integers'),
    ],
)
def test_bad_tile_options_are_named(tmp_path, tile, message):
    with pytest.raises((KeyError, ValueError), match=re.escape(message)) as error:
        _model_with_tile(tmp_path, tile)
    assert '`val.tile`' in str(error.value)
