"""Masked and N-band losses: BasicSR's pixel losses with weight=mask, the extremum/variance loss per band and
with masks, the VGG term's rgb_bands."""

import pytest
import torch
from basicsr.losses import build_loss
from torch.nn import functional as F

import rssr_loss  # noqa: F401  (registers the losses)


def _images(bands, size=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, bands, size, size, generator=gen, dtype=torch.float64)
    target = torch.rand(2, bands, size, size, generator=gen, dtype=torch.float64)
    return pred, target


def _strip_mask(pred, first_invalid_column):
    """(N, 1, H, W) mask, 0 from ``first_invalid_column`` on, and images holding NaN / nodata there."""
    mask = torch.ones(pred.shape[0], 1, *pred.shape[-2:], dtype=pred.dtype)
    mask[..., first_invalid_column:] = 0
    return mask


@pytest.mark.parametrize('loss_type', ['L1Loss', 'MSELoss', 'CharbonnierLoss'])
def test_basicsr_pixel_losses_with_weight_mask_equal_the_loss_on_the_valid_crop(loss_type):
    # What the model passes: weight = the (N, 1, H, W) valid mask; BasicSR's mean then runs over valid pixels.
    loss = build_loss(dict(type=loss_type, loss_weight=1.0))
    pred, target = _images(4)
    mask = _strip_mask(pred, 17)
    masked = loss(pred, torch.where(mask.bool(), target, -0.1), weight=mask)  # nodata values in the target
    torch.testing.assert_close(masked, loss(pred[..., :17], target[..., :17]))


@pytest.mark.parametrize('bands', [4, 13])
def test_extremum_variance_loss_is_the_mean_of_per_band_losses(bands):
    loss = build_loss(dict(type='ExtremumVarianceLoss', loss_weight=0.1))
    pred, target = _images(bands, seed=bands)
    per_band = [loss(pred[:, b : b + 1], target[:, b : b + 1]) for b in range(bands)]
    torch.testing.assert_close(loss(pred, target), torch.stack(per_band).mean())


@pytest.mark.parametrize('bands', [3, 13])
def test_extremum_variance_mask_leaves_out_windows_touching_masked_pixels(bands):
    loss = build_loss(dict(type='ExtremumVarianceLoss', loss_weight=1.0))
    pred, target = _images(bands, size=32, seed=1)
    pred.requires_grad_(True)
    mask = _strip_mask(pred, 20)  # valid columns 0..19: whole 4x4 variance windows, extremum windows 0..16
    wild = torch.where(mask.bool(), target, float('nan'))
    masked = loss(pred, wild, weight=mask)
    # The crop holding every kept window and nothing else: columns 0..19.
    torch.testing.assert_close(masked, loss(pred[..., :20], target[..., :20]))
    (grad,) = torch.autograd.grad(masked, pred)
    assert torch.isfinite(grad).all() and grad[..., 20:].abs().sum() == 0
    # A per-band mask (N, C, H, W) works too: each band's own windows.
    per_band_mask = mask.expand(-1, bands, -1, -1).clone()
    torch.testing.assert_close(loss(pred, wild, weight=per_band_mask), masked)
    # Every window masked: zero, still differentiable, never NaN.
    empty = loss(pred, target, weight=torch.zeros_like(mask))
    assert empty.item() == 0 and empty.requires_grad


def test_extremum_variance_refuses_non_mask_weights():
    loss = build_loss(dict(type='ExtremumVarianceLoss'))
    pred, target = _images(4)
    with pytest.raises(ValueError, match='0/1 mask'):
        loss(pred, target, weight=torch.full((2, 1, 24, 24), 0.5, dtype=pred.dtype))
    with pytest.raises(ValueError, match=r'weight \(2, 2, 24, 24\)'):
        loss(pred, target, weight=torch.ones(2, 2, 24, 24, dtype=pred.dtype))


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """Random VGG19 conv weights up to conv3_3 under torchvision's key names (all the loss reads)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs['E'])[:15]
    path = tmp_path_factory.mktemp('vgg') / 'vgg19.pth'
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return str(path), features.eval()


def test_vgg_rgb_bands_pick_the_bands_and_other_band_counts_are_refused_by_name(vgg_file):
    path, reference = vgg_file
    pred, target = _images(4, size=32)
    pred, target = pred.float(), target.float()
    loss = build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=path, rgb_bands=[3, 2, 1]))
    with torch.no_grad():
        expected = F.mse_loss(reference(pred[:, [2, 1, 0]] * 2 - 1), reference(target[:, [2, 1, 0]] * 2 - 1))
    torch.testing.assert_close(loss(pred, target), expected)
    plain = build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=path))
    with pytest.raises(ValueError, match=r'4 band\(s\) .*perceptual_opt\.rgb_bands') as info:
        plain(pred, target)
    assert '\n' not in str(info.value)
    assert torch.isfinite(plain(pred[:, :3], target[:, :3]))  # RGB as before
    with pytest.raises(ValueError, match='do not have'):
        build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=path, rgb_bands=[5, 2, 1]))(pred, target)
    for bad in ([1, 2], [0, 1, 2], ['r', 'g', 'b']):
        with pytest.raises(ValueError, match='perceptual_opt.rgb_bands'):
            build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=path, rgb_bands=bad))


def test_vgg_mask_makes_masked_pixels_count_for_nothing(vgg_file):
    path, _ = vgg_file
    loss = build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=path, rgb_bands=[1, 2, 3]))
    pred, target = (x.float() for x in _images(4, size=32, seed=2))
    mask = _strip_mask(pred, 20)
    other = pred.clone()
    other[..., 20:] = 7.0  # whatever the network made over nodata
    other.requires_grad_(True)
    value = loss(other, target, weight=mask)
    torch.testing.assert_close(value, loss(pred, target, weight=mask))
    (grad,) = torch.autograd.grad(value, other)
    assert grad[..., 20:].abs().sum() == 0 and grad[..., :20].abs().sum() > 0
