import math

import rssr_compat  # noqa: F401  (before basicsr)

import torch
from basicsr.utils.matlab_functions import calculate_weights_indices
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .arch_util import Upscale


def bicubic_matrix(in_length, scale):
    """The (out_length, in_length) matrix of MATLAB's ``imresize(..., 'bicubic')`` along one axis.

    Row ``i`` holds the cubic-kernel weights of output sample ``i``; taps that
    fall outside the signal are folded back by symmetric (edge-including)
    mirroring, which is how MATLAB and BasicSR's ``imresize`` pad.
    """
    out_length = math.ceil(in_length * scale)
    weights, indices, sym_len_start, _ = calculate_weights_indices(in_length, out_length, scale, 'cubic', 4, True)
    source = (indices.long() - sym_len_start) % (2 * in_length)  # position in the mirrored, periodic signal
    # Mirrored as often as needed: a signal shorter than the kernel (a 1-pixel side) folds more than once.
    source = torch.where(source >= in_length, 2 * in_length - 1 - source, source)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights.double())
    return matrix


@ARCH_REGISTRY.register()
class RSSRBicubic(nn.Module):
    """Bicubic upsampling with MATLAB's kernel: the baseline row of every SR table.

    Computes what ``basicsr.utils.matlab_functions.imresize(lq, upscale)`` does
    (the function that makes the LR images of the papers' data sets), as two
    batched matrix products, so that BasicSR's test pipeline can report the
    baseline like any other network. It has no parameters.

    Args:
        upscale (int): Upsampling factor. Default: 4.
    """

    def __init__(self, upscale: Upscale = 4):
        super().__init__()
        self.upscale = upscale

    def forward(self, x):
        """(B, C, H, W) in [0, 1] -> (B, C, H * upscale, W * upscale), unclipped like imresize."""
        height, width = x.shape[-2:]
        rows = bicubic_matrix(height, self.upscale).to(x)
        cols = bicubic_matrix(width, self.upscale).to(x)
        return rows @ x @ cols.transpose(0, 1)

    def analytic_flops(self, input_shape):
        """FLOPs of separable 4-tap bicubic filtering: a multiply and an add per tap, rows then columns."""
        batch, channels, height, width = input_shape
        out_h, out_w = height * self.upscale, width * self.upscale
        return 2 * 4 * batch * channels * (out_h * width + out_h * out_w)
