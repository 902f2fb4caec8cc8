"""Helpers shared by rssr's archs and tools (BasicSR's ``basicsr.archs.arch_util`` has the rest)."""

from torch.nn import functional as F


def pad_to_multiple(x, multiple):
    """Pad the bottom/right of ``x`` so that height and width are multiples of ``multiple``.

    Reflection keeps image statistics at the border (as BasicSR's SwinIR test
    does); inputs too small to reflect are replicated instead.

    Args:
        x (Tensor): (B, C, H, W).
        multiple (int): Required multiple of H and W.

    Returns:
        Tensor: (B, C, H + pad_h, W + pad_w); ``x`` itself when no padding is needed.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect' if pad_h < h and pad_w < w else 'replicate')
