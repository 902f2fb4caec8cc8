"""ExtremumVarianceLoss against the official loss's output and gradient, and its [0,1] mapping."""

import pytest
import torch
from basicsr.losses import build_loss

import rssr_loss  # noqa: F401
from rssr_loss.extremum_variance_loss import ExtremumVarianceLoss, local_extremes, local_variance


def test_matches_official_loss_and_gradient(parity_dir):
    ref = torch.load(parity_dir / 'extremum_variance_loss.pt', weights_only=True)
    pred = ref['pred'].clone().requires_grad_(True)
    loss = ExtremumVarianceLoss(value_range=(-1, 1))(pred, ref['target'])
    loss.backward()
    assert abs(loss.item() - ref['loss'].item()) <= 1e-5
    assert (pred.grad - ref['grad_pred']).abs().max().item() <= 1e-6


def test_zero_one_images_give_the_papers_value():
    torch.manual_seed(0)
    pred01, target01 = torch.rand(2, 3, 24, 20), torch.rand(2, 3, 24, 20)
    ours = ExtremumVarianceLoss()(pred01, target01)
    paper = ExtremumVarianceLoss(value_range=(-1, 1))(pred01 * 2 - 1, target01 * 2 - 1)
    assert torch.allclose(ours, paper, atol=1e-6)
    assert ours > 0


def test_maps_against_direct_computation():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 9, 10)
    # Variance over 4x4 blocks, stride 4: blocks starting at 0 and 4 in both axes.
    var = local_variance(x)
    assert var.shape == (1, 2, 2, 2)
    assert torch.allclose(var[0, 1, 1, 0], x[0, 1, 4:8, 0:4].var(unbiased=False))
    top, bottom = local_extremes(x)
    assert top.shape == bottom.shape == (1, 2, 6, 7)
    window = x[0, 0, 2:6, 3:7].flatten().sort().values
    assert torch.allclose(top[0, 0, 2, 3], window[-4:].mean())
    assert torch.allclose(bottom[0, 0, 2, 3], window[:4].mean())


def test_registry_weight_and_reduction():
    loss = build_loss(dict(type='ExtremumVarianceLoss', loss_weight=0.1))
    pred, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    full = ExtremumVarianceLoss()(pred, target)
    assert torch.allclose(loss(pred, target), 0.1 * full)
    assert loss(target, target) == 0
    summed = ExtremumVarianceLoss(reduction='sum')(pred, target)
    maps = [(p - t).abs() for p, t in zip(ExtremumVarianceLoss()._maps(pred), ExtremumVarianceLoss()._maps(target))]
    assert torch.allclose(summed, sum(m.sum() for m in maps))
    with pytest.raises(ValueError, match='reduction'):
        ExtremumVarianceLoss(reduction='none')


def test_merge_network_equals_top_k_with_its_gradient():
    """The paper's 4x4/k=4 path (merge network, own backward) against top-k on the unfolded windows."""
    torch.manual_seed(2)
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64, requires_grad=True)
    top, bottom = local_extremes(x)
    flat = x.unfold(2, 4, 1).unfold(3, 4, 1).flatten(-2)
    ref_top, ref_bottom = flat.topk(4, dim=-1).values.mean(-1), flat.topk(4, dim=-1, largest=False).values.mean(-1)
    assert torch.allclose(top, ref_top) and torch.allclose(bottom, ref_bottom)
    weights = torch.randn_like(top), torch.randn_like(bottom)
    (grad,) = torch.autograd.grad((top * weights[0]).sum() + (bottom * weights[1]).sum(), x)
    (ref_grad,) = torch.autograd.grad((ref_top * weights[0]).sum() + (ref_bottom * weights[1]).sum(), x)
    assert torch.allclose(grad, ref_grad)
    assert torch.autograd.gradcheck(local_extremes, (x[:1, :1, :6, :7].detach().requires_grad_(),))
