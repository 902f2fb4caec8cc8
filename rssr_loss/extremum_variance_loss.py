import torch
from basicsr.losses.loss_util import weight_reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F


def _windows(x, size, stride):
    """Sliding windows as a view: (N, C, H, W) -> (N, C, H', W', size, size), no copy."""
    return x.unfold(2, size, stride).unfold(3, size, stride)


def local_variance(x, window=4, stride=4):
    """Population variance of each window: (N, C, H, W) -> (N, C, H', W')."""
    win = _windows(x, window, stride)
    mean = win.mean(dim=(-2, -1), keepdim=True)
    return (win - mean).square().mean(dim=(-2, -1))


def _sort_pairs(v, pairs, descending=True):
    """Compare-exchange network on a list of equally shaped tensors: v[i] gets the larger (or smaller) of v[i], v[j]."""
    first, second = (torch.maximum, torch.minimum) if descending else (torch.minimum, torch.maximum)
    for i, j in pairs:
        v[i], v[j] = first(v[i], v[j]), second(v[i], v[j])
    return v


SORT4 = ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2))  # sorts any 4 values
BITONIC4 = ((0, 2), (1, 3), (0, 1), (2, 3))  # sorts a bitonic sequence of 4


def _best4_of_two_sorted(a, b, descending):
    """The 4 largest (smallest) of two sorted 4-lists, as a bitonic list: elementwise max (min) of a and reversed b."""
    pick = torch.maximum if descending else torch.minimum
    return [pick(a[i], b[3 - i]) for i in range(4)]


def _extremes_4x4(x):
    """Sum of the 4 largest and of the 4 smallest values of every 4x4 window (stride 1), and the 4th of each.

    Windows overlap, so instead of sorting 16 values per window, each 4-pixel
    column is sorted once, neighbouring columns are merged into the best 4 of 8,
    and neighbouring pairs into the best 4 of 16 (bitonic merges): about 50
    elementwise min/max passes over the image instead of two top-k per pixel.

    Args:
        x (Tensor): (N, C, H, W), H and W >= 4.

    Returns:
        tuple[Tensor]: top sum, bottom sum, 4th largest, 4th smallest; each (N, C, H-3, W-3).
    """
    h = x.shape[-2] - 3
    column = _sort_pairs([x[..., i : i + h, :] for i in range(4)], SORT4)  # descending, (N, C, H-3, W)
    sums, kth = [], []
    for descending in (True, False):
        col = column if descending else column[::-1]
        pair = _sort_pairs(
            _best4_of_two_sorted([c[..., :-1] for c in col], [c[..., 1:] for c in col], descending),
            BITONIC4,
            descending,
        )  # columns j and j+1, (N, C, H-3, W-1)
        best = _best4_of_two_sorted([p[..., :-2] for p in pair], [p[..., 2:] for p in pair], descending)
        sums.append(best[0] + best[1] + best[2] + best[3])
        kth.append(
            torch.minimum(torch.minimum(best[0], best[1]), torch.minimum(best[2], best[3]))
            if descending
            else torch.maximum(torch.maximum(best[0], best[1]), torch.maximum(best[2], best[3]))
        )
    return (*sums, *kth)


class _LocalExtremes4x4(torch.autograd.Function):
    """Means of the 4 largest / smallest values of every 4x4 window; the gradient of each mean goes
    (1/4 each) to the window's values at or beyond its 4th extreme, i.e. to the selected values."""

    @staticmethod
    def forward(ctx, x):
        top, bottom, top_kth, bottom_kth = _extremes_4x4(x)
        ctx.save_for_backward(x, top_kth, bottom_kth)
        return top / 4, bottom / 4

    @staticmethod
    def backward(ctx, grad_top, grad_bottom):
        x, top_kth, bottom_kth = ctx.saved_tensors
        h, w = top_kth.shape[-2:]
        grad_top, grad_bottom = grad_top / 4, grad_bottom / 4
        grad = torch.zeros_like(x)
        for dy in range(4):
            for dx in range(4):
                shifted = x[..., dy : dy + h, dx : dx + w]
                grad[..., dy : dy + h, dx : dx + w] += torch.where(shifted >= top_kth, grad_top, 0) + torch.where(
                    shifted <= bottom_kth, grad_bottom, 0
                )
        return grad


def local_extremes(x, window=4, stride=1, k=4):
    """Means of the k largest and k smallest values of each window.

    The paper's setting (4x4 windows, stride 1, k=4) runs through a merge
    network with a hand-written backward; other settings use top-k.

    Args:
        x (Tensor): (N, C, H, W).

    Returns:
        tuple[Tensor, Tensor]: two (N, C, H', W') maps.
    """
    if (window, stride, k) == (4, 1, 4) and min(x.shape[-2:]) >= 4:
        return _LocalExtremes4x4.apply(x)
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

    Every map is per band, so any band count works: the loss of an N-band
    image is the mean of its bands' losses. With a mask (``weight``, 1 =
    valid), every window that touches a masked pixel is left out of the maps'
    L1 (nodata and cloud pixels, whatever their values, change nothing).

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

    def __init__(
        self,
        loss_weight=1.0,
        reduction='mean',
        var_window=4,
        var_stride=4,
        extremum_window=4,
        extremum_stride=1,
        k=4,
        value_range=(0.0, 1.0),
    ):
        super().__init__()
        if reduction not in ('mean', 'sum'):
            raise ValueError(f'Unsupported reduction mode: {reduction}. Supported ones are: mean | sum')
        if not 0 < k <= extremum_window**2:
            raise ValueError(
                f'k={k} must be in 1..{extremum_window**2} for a {extremum_window}x{extremum_window} window'
            )
        low, high = value_range
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.var_window, self.var_stride = var_window, var_stride
        self.extremum_window, self.extremum_stride, self.k = extremum_window, extremum_stride, k
        self.scale, self.shift = 2.0 / (high - low), -2.0 * low / (high - low) - 1.0

    def _maps(self, x):
        x = x * self.scale + self.shift
        return (
            local_variance(x, self.var_window, self.var_stride),
            *local_extremes(x, self.extremum_window, self.extremum_stride, self.k),
        )

    def forward(self, pred, target, weight=None, **kwargs):
        """
        Args:
            pred (Tensor): (N, C, H, W), any C.
            target (Tensor): (N, C, H, W), compared without gradient.
            weight (Tensor | None): (N, 1, H, W) or (N, C, H, W) mask, 1 = valid, 0 = left out (nodata, cloud),
                as BasicSR's pixel losses take it. A window touching a 0 is left out; with no window left the
                loss is 0.
        """
        if weight is None:
            with torch.no_grad():
                target_maps = self._maps(target)
            loss = sum(F.l1_loss(p, t, reduction=self.reduction) for p, t in zip(self._maps(pred), target_maps))
            return self.loss_weight * loss
        if weight.dim() != 4 or weight.shape[1] not in (1, pred.shape[1]) or weight.shape[-2:] != pred.shape[-2:]:
            raise ValueError(
                f'ExtremumVarianceLoss: weight {tuple(weight.shape)} must be an (N, 1 or C, H, W) mask for '
                f'images {tuple(pred.shape)}.'
            )
        if not torch.all((weight == 0) | (weight == 1)):
            raise ValueError('ExtremumVarianceLoss: weight must be a 0/1 mask (1 = valid); it is not.')
        valid = weight.bool()
        # Masked pixels only reach windows that are dropped; zeroed so NaN or nodata values cannot spread.
        pred, target = torch.where(valid, pred, 0.0), torch.where(valid, target, 0.0)
        with torch.no_grad():
            target_maps = self._maps(target)
            # A window is kept when all its pixels are valid: a min-pool of the mask with the window's geometry.
            window_masks = [
                -F.max_pool2d(-weight.to(pred.dtype), window, stride)
                for window, stride in (
                    (self.var_window, self.var_stride),
                    (self.extremum_window, self.extremum_stride),
                    (self.extremum_window, self.extremum_stride),
                )
            ]
        loss = pred.sum() * 0  # stays in the graph when every window is masked
        for p, t, keep in zip(self._maps(pred), target_maps, window_masks):
            if keep.any():  # BasicSR's masked mean: over the kept windows (and bands) only
                loss = loss + weight_reduce_loss((p - t).abs(), keep, self.reduction)
        return self.loss_weight * loss
