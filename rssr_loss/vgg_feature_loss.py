import os

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

from rssr_utils.weights import read_weights_file

DEFAULT_VGG19_PATH = 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'
# Index of each conv layer in torchvision's vgg19().features.
VGG19_CONV_INDEX = {
    'conv1_1': 0,
    'conv1_2': 2,
    'conv2_1': 5,
    'conv2_2': 7,
    'conv3_1': 10,
    'conv3_2': 12,
    'conv3_3': 14,
    'conv3_4': 16,
    'conv4_1': 19,
    'conv4_2': 21,
    'conv4_3': 23,
    'conv4_4': 25,
    'conv5_1': 28,
    'conv5_2': 30,
    'conv5_3': 32,
    'conv5_4': 34,
}


def vgg19_features(last_layer, vgg_path):
    """torchvision's VGG19 ``features`` up to ``last_layer`` (inclusive, before its ReLU), from a local file.

    Only the convolutional part is built, so the 120 M classifier weights are never allocated.
    """
    from torchvision.models.vgg import cfgs, make_layers

    if not os.path.isfile(vgg_path):
        raise FileNotFoundError(
            f"VGG19 weights not found at {vgg_path!r}. Nothing is downloaded at run time: copy torchvision's "
            '`vgg19-dcbb9e9d.pth` (torchvision.models.VGG19_Weights.IMAGENET1K_V1, e.g. from '
            '~/.cache/torch/hub/checkpoints/ on a machine that has it) to that path, or set `vgg_path`.'
        )
    features = make_layers(cfgs['E'])[: VGG19_CONV_INDEX[last_layer] + 1]
    state = read_weights_file(vgg_path)
    state = {k[len('features.') :]: v for k, v in state.items() if k.startswith('features.')}
    state = {k: v for k, v in state.items() if int(k.split('.')[0]) < len(features)}
    features.load_state_dict(state)
    return features


@LOSS_REGISTRY.register()
class RSSRVGGFeatureLoss(nn.Module):
    """MSE between VGG19 features of the prediction and the target (FAT's perceptual term).

    FAT compares the activations of ``conv3_3`` (``vgg19().features[0:15]``,
    before its ReLU) with an MSE, on images in [-1, 1] fed to VGG as they are,
    without ImageNet mean/std normalisation, weighted by 0.001. Images in
    ``value_range`` are mapped linearly to [-1, 1] first (set
    ``value_range: [-1, 1]`` to feed them unchanged). BasicSR's
    ``PerceptualLoss`` cannot express this: its 'l2' criterion is broken in
    1.4.2 and it always normalises or maps to [0, 1].

    VGG sees three bands: an RGB image as it is, any other band count through
    ``rgb_bands`` (the 1-based red, green and blue bands of the model's bands,
    e.g. ``[3, 2, 1]`` for a Sentinel-2 B2, B3, B4, B8 stack); without it, an
    image of another band count is refused by name at the first forward. With
    a mask (``weight``, 1 = valid) the prediction's masked pixels are replaced
    by the target's, so they add no difference and get no gradient (VGG's
    receptive field still lets valid pixels near them see their values).

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        layer (str): Last VGG19 conv layer, e.g. 'conv3_3'. Default: 'conv3_3'.
        vgg_path (str): Local torchvision VGG19 weight file (nothing is
            downloaded). Default: 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'.
        value_range (tuple[float]): Range of the input images. Default: (0, 1).
        reduction (str): 'mean' | 'sum'. Default: 'mean'.
        rgb_bands (list[int] | None): 1-based red, green, blue bands of N-band images. Default: None (RGB).
    """

    def __init__(
        self,
        loss_weight=1.0,
        layer='conv3_3',
        vgg_path=DEFAULT_VGG19_PATH,
        value_range=(0.0, 1.0),
        reduction='mean',
        rgb_bands=None,
    ):
        super().__init__()
        if rgb_bands is not None and (
            len(rgb_bands) != 3 or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in rgb_bands)
        ):
            raise ValueError(
                f'perceptual_opt.rgb_bands {rgb_bands!r} must be three 1-based band numbers (red, green, blue).'
            )
        self.rgb_bands = None if rgb_bands is None else [b - 1 for b in rgb_bands]
        if layer not in VGG19_CONV_INDEX:
            raise ValueError(f'Unknown VGG19 layer {layer!r}; choose one of {list(VGG19_CONV_INDEX)}.')
        if reduction not in ('mean', 'sum'):
            raise ValueError(f'Unsupported reduction mode: {reduction}. Supported ones are: mean | sum')
        self.features = vgg19_features(layer, vgg_path).eval().requires_grad_(False)
        low, high = value_range
        self.scale, self.shift = 2.0 / (high - low), -2.0 * low / (high - low) - 1.0
        self.loss_weight = loss_weight
        self.reduction = reduction

    def train(self, mode=True):
        super().train(mode)
        self.features.eval()  # fixed feature extractor
        return self

    def _rgb(self, x):
        """(N, C, H, W) -> (N, 3, H, W): the ``rgb_bands`` of x, or x itself when it is RGB."""
        bands = x.shape[1]
        if self.rgb_bands is None:
            if bands != 3:
                raise ValueError(
                    f'RSSRVGGFeatureLoss: the images have {bands} band(s) and VGG needs 3; set '
                    'perceptual_opt.rgb_bands to the 1-based red, green and blue bands '
                    '(e.g. [3, 2, 1] for B2, B3, B4, B8).'
                )
            return x
        if max(self.rgb_bands) >= bands:
            raise ValueError(
                f'perceptual_opt.rgb_bands {[b + 1 for b in self.rgb_bands]} asks for a band the {bands}-band '
                'images do not have.'
            )
        return x[:, self.rgb_bands]

    def forward(self, pred, target, weight=None, **kwargs):
        """
        Args:
            pred (Tensor): (N, C, H, W) images in ``value_range``; C = 3, or any with ``rgb_bands``.
            target (Tensor): (N, C, H, W).
            weight (Tensor | None): (N, 1, H, W) or (N, C, H, W) mask, 1 = valid.
        """
        if weight is not None:
            pred = torch.where(weight.bool(), pred, target)
        pred, target = self._rgb(pred), self._rgb(target)
        pred_feat = self.features(pred * self.scale + self.shift)
        with torch.no_grad():
            target_feat = self.features(target * self.scale + self.shift)
        return self.loss_weight * F.mse_loss(pred_feat, target_feat, reduction=self.reduction)
