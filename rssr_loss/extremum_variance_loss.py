import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY


def _windows(x, size, stride):
    """Sliding windows as a view: (N, C, H, W) -> (N, C, H', W', size, size), no copy."""
    return x.unfold(2, size, stride).unfold(3, size, stride)


def local_variance(x, window=4, stride=4):
    """Population variance of each window: (N, C, H, W) -> (N, C, H', W')."""
    win = _windows(x, window, stride)
    mean = win.mean(dim=(-2, -1), keepdim=True)
    return (win - mean).square().mean(dim=(-2, -1))


def local_extremes(x, window=4, stride=1, k=4):
    """Means of the k largest and k smallest values of each window.

    Args:
        x (Tensor): (N, C, H, W).

    Returns:
        tuple[Tensor, Tensor]: two (N, C, H', W') maps.
    """
    # Values are laid out row by row inside each window (as F.unfold does), so ties
    # resolve the same way, and topk keeps only k indices per window for backward.
    flat = _windows(x, window, stride).flatten(-2)
    return flat.topk(k, dim=-1).values.mean(-1), flat.topk(k, dim=-1, largest=False).values.mean(-1)


@LOSS_REGISTRY.register()
class ExtremumVarianceLoss(nn.Module):
    """Local extremum/variance loss of FAT (Yan et al., TGRS 2025).

    ``L = L1(var(pred), var(gt)) + L1(top_k(pred), top_k(gt)) + L1(bottom_k(pred), bottom_k(gt))``
    where ``var`` is the variance of each ``var_window`` x ``var_window`` window
    (stride ``var_stride``) and ``top_k``/``bottom_k`` the mean of the ``k``
    largest/smallest values of each ``extremum_window`` window (stride
    ``extremum_stride``). The paper uses it with weight 0.1 next to L1.

    The paper computes it on images in [-1, 1]. Images in ``value_range`` are
    mapped linearly to [-1, 1] first, so with BasicSR's [0, 1] images the loss
    equals the paper's (without the mapping, variances would be 4x and extremes
    2x smaller).

    Args:
        loss_weight (float): Loss weight. Default: 1.0.
        reduction (str): 'mean' (the paper) or 'sum' over each map's elements.
        var_window (int): Variance window. Default: 4.
        var_stride (int): Variance stride. Default: 4.
        extremum_window (int): Extremum window. Default: 4.
        extremum_stride (int): Extremum stride. Default: 1.
        k (int): Number of largest / smallest values averaged. Default: 4.
        value_range (tuple[float]): Range of the input images. Default: (0, 1).
    """

    def __init__(self, loss_weight=1.0, reduction='mean', var_window=4, var_stride=4, extremum_window=4,
                 extremum_stride=1, k=4, value_range=(0., 1.)):
        super().__init__()
        if reduction not in ('mean', 'sum'):
            raise ValueError(f'Unsupported reduction mode: {reduction}. Supported ones are: mean | sum')
        if not 0 < k <= extremum_window**2:
            raise ValueError(f'k={k} must be in 1..{extremum_window**2} for a {extremum_window}x{extremum_window} window')
        low, high = value_range
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.var_window, self.var_stride = var_window, var_stride
        self.extremum_window, self.extremum_stride, self.k = extremum_window, extremum_stride, k
        self.scale, self.shift = 2. / (high - low), -2. * low / (high - low) - 1.

    def _maps(self, x):
        x = x * self.scale + self.shift
        return (local_variance(x, self.var_window, self.var_stride),
                *local_extremes(x, self.extremum_window, self.extremum_stride, self.k))

    def forward(self, pred, target, weight=None, **kwargs):
        """
        Args:
            pred (Tensor): (N, C, H, W).
            target (Tensor): (N, C, H, W), compared without gradient.
            weight: unsupported (the maps have other sizes than the images).
        """
        if weight is not None:
            raise ValueError('ExtremumVarianceLoss does not take element-wise weights.')
        with torch.no_grad():
            target_maps = self._maps(target)
        loss = sum(F.l1_loss(p, t, reduction=self.reduction) for p, t in zip(self._maps(pred), target_maps))
        return self.loss_weight * loss
