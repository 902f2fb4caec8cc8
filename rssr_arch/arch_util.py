"""Helpers shared by rssr's archs and tools (BasicSR's ``basicsr.archs.arch_util`` has the rest).

Export paths: while a network is traced for export (``torch.export`` /
``torch.onnx.export(dynamo=True)``) or inside :func:`export_mode`,
:func:`exporting` is True and the archs take paths that every ONNX runtime can
run with dynamic height, width and batch: real-valued DFTs as matrix products
(:func:`rfft2_real`, :func:`irfft2_real`; ONNX has no complex tensors and
onnxruntime's ``DFT`` kernel loses precision at sizes that are not powers of
two), rolls as two slices (:func:`roll`), no branches on sizes. Eager PyTorch
keeps ``torch.fft`` and ``torch.roll``: the export paths compute the same
values (tests/test_export.py checks it) but more slowly.
"""

import math
from contextlib import contextmanager
from typing import Annotated

import msgspec
import torch
from torch import nn
from torch.nn import functional as F

# Constructor argument types of rssr's archs: the option schema (rssr_utils.schema) reads them, so a typo or a
# size that would not fit in memory is refused by name before the network is built.
Upscale = Annotated[int, msgspec.Meta(ge=1, le=64, description='upscale factor')]
Channels = Annotated[int, msgspec.Meta(ge=1, le=4096, description='feature channels')]
Count = Annotated[int, msgspec.Meta(ge=1, le=1024, description='blocks, layers or heads')]
Positive = Annotated[int, msgspec.Meta(ge=1, le=65536)]
Ratio = Annotated[float, msgspec.Meta(gt=0, le=64)]

_export_mode = False


def exporting():
    """True while tracing for export, or inside :func:`export_mode`: archs take their export paths."""
    return _export_mode or torch.compiler.is_exporting()


@contextmanager
def export_mode(enabled=True):
    """Run the archs' export paths in eager mode (what the exporter traces), e.g. to compare them with the defaults."""
    global _export_mode
    previous, _export_mode = _export_mode, enabled
    try:
        yield
    finally:
        _export_mode = previous


def prepare_export(net):
    """Call ``prepare_export()`` of every submodule of ``net`` that has one (e.g. FAT's fixed
    rotation tables) and return ``net``: what must exist as tensors before the tracer runs."""
    for module in net.modules():
        if module is not net and callable(getattr(module, 'prepare_export', None)):
            module.prepare_export()
    return net


def pad_to_multiple(x, multiple):
    """Pad the bottom/right of ``x`` so that height and width are multiples of ``multiple``.

    Reflection keeps image statistics at the border (as BasicSR's SwinIR test
    does); inputs too small to reflect are replicated instead. While exporting,
    the padding is always applied (zero rows are a no-op) with reflection, so
    exported models need sides of at least ``multiple``; the padded size is
    written as ``ceil(h / multiple) * multiple`` so that the tracer knows it is
    a multiple.

    Args:
        x (Tensor): (B, C, H, W).
        multiple (int): Required multiple of H and W.

    Returns:
        Tensor: (B, C, H + pad_h, W + pad_w); ``x`` itself when no padding is needed.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (h + multiple - 1) // multiple * multiple - h, (w + multiple - 1) // multiple * multiple - w
    if exporting():
        return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode='reflect' if pad_h < h and pad_w < w else 'replicate')


class PaddedSR(nn.Module):
    """A network that needs sides of a multiple, made to take any size: pad (as :func:`pad_to_multiple`), run, crop.

    What BasicSR's ``SwinIRModel.test`` does around SwinIR, kept with the
    network so that exported models and scene inference take any input size.

    Args:
        net (nn.Module): Maps (B, C, H, W) with H, W multiples of ``pad_multiple`` to (B, C, scale*H, scale*W).
        pad_multiple (int): Required multiple of the input sides (the name FAT and TSFNet use too).
        scale (int): Upscale factor.
    """

    def __init__(self, net, pad_multiple, scale):
        super().__init__()
        self.net, self.pad_multiple, self.upscale = net, int(pad_multiple), int(scale)

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, scale*H, scale*W)."""
        h, w = x.shape[-2:]
        return self.net(pad_to_multiple(x, self.pad_multiple))[..., : h * self.upscale, : w * self.upscale]


def roll(x, shift, dim):
    """``torch.roll(x, shift, dim)``; while exporting two slices and a concatenation (any symbolic ``shift``)."""
    if not exporting():
        return torch.roll(x, shifts=shift, dims=dim)
    n = x.shape[dim]
    k = shift % n
    return torch.cat([x.narrow(dim, n - k, k), x.narrow(dim, 0, n - k)], dim)


def atan2(y, x):
    """``torch.atan2(y, x)``; while exporting, from Atan with torch's quadrants (the exporter's own
    atan2 gives -pi instead of pi at y = +0, x < 0: the phase of real negative spectrum bins)."""
    if not exporting():
        return torch.atan2(y, x)
    angle = torch.atan(y / x)
    angle = torch.where(x < 0, torch.where(y >= 0, angle + math.pi, angle - math.pi), angle)
    return torch.where((x == 0) & (y == 0), 0.0, angle)


def remainder(x, n):
    """``x % n`` for an integer tensor ``x``; while exporting, ``n`` (maybe a symbolic size) becomes a tensor."""
    return x % (x.new_zeros(()) + n) if exporting() else x % n


def _dft_basis(n, bins, like):
    """cos and sin of 2 pi k j / n for k < ``bins``, j < n: two (bins, n) float32 matrices.

    k j is reduced modulo n in integers and centred to (-n/2, n/2] first, so each
    float32 angle is within 2 ulp of pi of the exact one for any n, without float64
    (onnxruntime 1.18-1.28 have no float64 Cos/Sin kernels; float32 is what every
    runtime runs). Float64 ``like`` (eager checks against torch.fft) gets float64 bases;
    float16 graphs transform in float32: their sums over a side overflow float16.
    """
    k = torch.arange(bins, device=like.device)
    j = torch.arange(n, device=like.device)
    m = remainder(k[:, None] * j[None, :], n)
    m = torch.where(2 * m > n, m - n, m)
    angle = m.to(torch.float64 if like.dtype == torch.float64 else torch.float32) * (2 * math.pi) / n
    return angle.cos(), angle.sin()


def _norm_scale(norm, h, w, inverse):
    if norm == 'ortho':
        return (h * w) ** -0.5
    if norm in (None, 'backward'):
        return 1 / (h * w) if inverse else 1.0
    raise ValueError(f'norm {norm!r}: use None, "backward" or "ortho".')


def self_conjugate(h, w, device=None):
    """(H, W//2+1) bool mask of the bins of ``rfft2`` of a real (H, W) map that are real numbers.

    Their imaginary parts are zero in exact arithmetic; FFT kernels leave +-1e-17 there whose sign
    depends on the CPU's instructions (pocketfft on AVX2 vs AVX-512), and the phase of a negative
    real bin jumps from pi to -pi with that sign. Callers set them to +0 so the phase is pi
    everywhere (and both paths of TSFNet, eager and export, compute the same function).
    """
    rows, cols = torch.arange(h, device=device)[:, None], torch.arange(w // 2 + 1, device=device)
    return ((rows == 0) | (2 * rows == h)) & ((cols == 0) | (2 * cols == w))


def rfft2_real(x, norm=None):
    """``torch.fft.rfft2(x, norm=norm)`` as real and imaginary parts, with matrix products only.

    Args:
        x (Tensor): (..., H, W) real.
        norm (str | None): None/'backward' or 'ortho', as torch.fft.

    Returns:
        tuple[Tensor, Tensor]: real and imaginary parts, each (..., H, W//2+1).
    """
    h, w = x.shape[-2:]
    bins = w // 2 + 1
    cos_w, sin_w = _dft_basis(w, bins, x)  # (W', W)
    cos_h, sin_h = _dft_basis(h, h, x)  # (H, H)
    # The products' rounding errors scale with |x|: transform x minus its mean, whose
    # transform is the mean * H * W at the zero frequency only.
    mean = x.mean(dim=(-2, -1), keepdim=True)
    x = x - mean
    # One product per axis (fewer, larger products run faster in every runtime): along the width
    # with [cos; -sin] (e^{-i t} = cos t - i sin t), giving [re | im]; along the height, complex
    # input, with the block matrix [[cos, sin], [-sin, cos]] on [re; im].
    re, im = (x @ torch.cat([cos_w, -sin_w]).T).split([bins, bins], dim=-1)
    height = torch.cat([torch.cat([cos_h, sin_h], 1), torch.cat([-sin_h, cos_h], 1)])
    re, im = (height @ torch.cat([re, im], dim=-2)).split([h, h], dim=-2)
    rows, cols = torch.arange(h, device=x.device)[:, None], torch.arange(w // 2 + 1, device=x.device)
    re = re + mean * (h * w) * ((rows == 0) & (cols == 0))
    im = torch.where(self_conjugate(h, w, x.device), 0.0, im)
    scale = _norm_scale(norm, h, w, inverse=False)
    return (re, im) if scale == 1.0 else (re * scale, im * scale)


def irfft2_real(re, im, size, norm=None):
    """``torch.fft.irfft2(torch.complex(re, im), s=size, norm=norm)`` with matrix products only.

    Like torch's c2r transform, the imaginary parts of the zero and (even
    widths) Nyquist columns are ignored.

    Args:
        re, im (Tensor): (..., H, W//2+1) half spectrum.
        size (tuple[int, int]): Output (H, W).
        norm (str | None): None/'backward' or 'ortho', as torch.fft.

    Returns:
        Tensor: (..., H, W) real.
    """
    h, w = size
    cos_h, sin_h = _dft_basis(h, h, re)
    # Inverse along the height (e^{+i t}) as one product: [[cos, -sin], [sin, cos]] on [re; im].
    height = torch.cat([torch.cat([cos_h, -sin_h], 1), torch.cat([sin_h, cos_h], 1)])
    re, im = (height @ torch.cat([re, im], dim=-2)).split([h, h], dim=-2)
    bins = w // 2 + 1
    cos_w, sin_w = _dft_basis(w, bins, re)  # (W', W)
    # Columns 1 .. ceil(W/2)-1 stand for themselves and their conjugate mirror (weight 2); the
    # zero and Nyquist columns count once, with their imaginary parts dropped. One product: [re | im].
    k = torch.arange(bins, device=re.device)
    edge = ((k == 0) | (2 * k == w))[:, None]
    width = torch.cat([cos_w * torch.where(edge, 1.0, 2.0), -sin_w * torch.where(edge, 0.0, 2.0)])
    out = torch.cat([re, im], dim=-1) @ width
    return out * _norm_scale(norm, h, w, inverse=True)


def record_options(module, **options):
    """Keep constructor options that no weight shape shows as int64 buffers in ``module``'s state dict.

    Loaders that rebuild a network from its state dict alone (spandrel, see
    :mod:`rssr_arch.spandrel`) read them there. They describe the module, not
    its weights, so loading never changes them: the constructor's values stand
    (e.g. TSFNet weights trained at x8 fine-tuned at x16), and state dicts saved
    before an option was recorded load as before, with ``strict=True``.
    :func:`recorded_option_keys` lists them for the weight loader's key checks.

    Args:
        module (nn.Module): The module (call it in ``__init__``).
        **options (int | list[int]): Buffer name -> value.
    """
    for name, value in options.items():
        module.register_buffer(name, torch.tensor(value, dtype=torch.int64))
    module.recorded_options = tuple(options)
    module.register_load_state_dict_pre_hook(_keep_recorded_options)


def _keep_recorded_options(module, state_dict, prefix, *_):
    for name in module.recorded_options:  # the loaded state dict is a copy (nn.Module.load_state_dict)
        state_dict[prefix + name] = getattr(module, name)


def recorded_option_keys(net):
    """State-dict keys of ``net``'s :func:`record_options` buffers (a file may lack them)."""
    return {f'{path}.{n}' if path else n for path, m in net.named_modules() for n in getattr(m, 'recorded_options', ())}
