"""RSSRVGGFeatureLoss: FAT's conv3_3 MSE on [-1,1] images, from a local weight file only."""

import pytest
import torch
from basicsr.losses import build_loss
from torch.nn import functional as F

import rssr_loss  # noqa: F401


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """A randomly initialised torchvision VGG19 checkpoint (the real one cannot be downloaded here)."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    net = vgg19(weights=None)
    path = tmp_path_factory.mktemp('vgg') / 'vgg19.pth'
    torch.save(net.state_dict(), path)
    return str(path), net.features[:15].eval()


def test_equals_mse_of_conv3_3_features_on_minus_one_one(vgg_file):
    path, reference = vgg_file
    loss = build_loss(dict(type='RSSRVGGFeatureLoss', loss_weight=0.001, vgg_path=path))
    assert len(loss.features) == 15 and isinstance(loss.features[-1], torch.nn.Conv2d)
    torch.manual_seed(1)
    pred, gt = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    value = loss(pred, gt)
    with torch.no_grad():
        expected = 0.001 * F.mse_loss(reference(pred * 2 - 1), reference(gt * 2 - 1))
    assert torch.allclose(value, expected, rtol=1e-5)
    value.backward()
    assert pred.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())
    assert not loss.train().features.training


def test_missing_weights_name_the_path_and_do_not_download(tmp_path):
    missing = tmp_path / 'nowhere' / 'vgg19.pth'
    with pytest.raises(FileNotFoundError, match='nowhere/vgg19.pth'):
        build_loss(dict(type='RSSRVGGFeatureLoss', vgg_path=str(missing)))
    with pytest.raises(ValueError, match='conv9_9'):
        build_loss(dict(type='RSSRVGGFeatureLoss', layer='conv9_9', vgg_path=str(missing)))
