"""TSFNet: two-stage spatial-frequency joint learning for large-factor remote-sensing SR.

Wang et al., "Two-stage Spatial-Frequency Joint Learning for Large-Factor Remote
Sensing Image Super-Resolution".

The LR image is nearest-upsampled to the HR grid, then refined by two U-Nets
(stages). At every level of each U-Net the features are split in half: a spatial
half goes through residual spatial processing blocks (RSPB), a frequency half
through amplitude-guided phase adaptive filters (AGPF). Fusion blocks (MDTA
channel attention, plus cross-feature selection, CFS, in the second stage's
encoder) merge the halves and the skips. The spectrum of the first stage's last
decoder feature is split into frequency bands, one per decoder level (SPB), and
added to the first stage's decoder features, which guide the second stage's
encoder. Both stages predict a residual; the network returns both results.
"""

import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from .arch_util import (
    Channels,
    Count,
    Upscale,
    atan2,
    exporting,
    irfft2_real,
    pad_to_multiple,
    record_options,
    rfft2_real,
    roll,
    self_conjugate,
)

NUM_LEVELS = 3  # downsamplings per U-Net
# HR sides are padded to this multiple: every level's side must be even (the
# spectrum shifts and band slicing assume it).
HR_MULTIPLE = 2 ** (NUM_LEVELS + 1)


def conv_prelu(in_ch, out_ch):
    """3x3 conv without bias followed by a PReLU (the heads and tails)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.PReLU())


def shift_rows(spectrum, shift):
    """Cyclic shift along the height axis of a (..., H, W) spectrum (the official fftshift variant)."""
    return roll(spectrum, shift, -2)


def half_spectrum(x, shift):
    """Row-shifted ``rfft2(x + 1e-8)`` of a (B, C, H, W) map.

    Returns:
        The complex (B, C, H, W//2+1) spectrum, or while exporting (see
        :mod:`rssr_arch.arch_util`) its real and imaginary parts stacked in a
        leading axis of 2.
    """
    if exporting():
        return shift_rows(torch.stack(rfft2_real(x + 1e-8)), shift)
    spectrum = torch.fft.rfft2(x + 1e-8)
    real = self_conjugate(*x.shape[-2:], x.device)  # +0 imaginary parts there: a phase that does not depend on the CPU
    spectrum = torch.where(real, spectrum.real.to(spectrum.dtype), spectrum)
    return shift_rows(spectrum, shift)


def from_half_spectrum(spectrum, shift, size):
    """``irfft2(shift_rows(spectrum, shift) + 1e-8, s=size)``, for either form :func:`half_spectrum` returns."""
    if exporting():
        re, im = shift_rows(spectrum, shift).unbind(0)
        return irfft2_real(re + 1e-8, im, size)
    return torch.fft.irfft2(shift_rows(spectrum, shift) + 1e-8, s=size)


class ResBlock(nn.Module):
    """relu(conv(relu(conv(x))) + x), convs without bias."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)

    def forward(self, x):
        return (self.conv2(F.relu(self.conv1(x), inplace=True)) + x).relu_()  # in place: fewer large buffers


class RSPB(nn.Module):
    """Residual spatial processing block: residual blocks, a conv+PReLU, and a learnable-scale skip.

    Args:
        channels (int): Channels.
        num_block (int): Residual blocks.
    """

    def __init__(self, channels, num_block):
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(channels) for _ in range(num_block)))
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.act = nn.PReLU()
        self.res_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.act(self.conv(self.blocks(x))) + self.res_scale * x


class SpatialGate(nn.Sequential):
    """(B, 2, H, W) mean/max maps -> (B, 1, H, W) gate: depthwise 3x3, ReLU, 1x1, sigmoid."""

    def __init__(self):
        super().__init__(nn.Conv2d(2, 2, 3, 1, 1, groups=2), nn.ReLU(True), nn.Conv2d(2, 1, 1), nn.Sigmoid())


def mean_max(*xs):
    """(B, 2, H, W) mean and max over the channels of all of ``xs`` together, without concatenating them."""
    total = sum(x.sum(dim=1) for x in xs) / sum(x.shape[1] for x in xs)
    peak = xs[0].amax(dim=1)
    for x in xs[1:]:
        peak = torch.maximum(peak, x.amax(dim=1))
    return torch.stack([total, peak], dim=1)


class AmplitudePhaseFilter(nn.Module):
    """Filters the amplitude, then predicts the phase from the old phase and the amplitude change.

    Args:
        channels (int): Channels.
    """

    # float16 exports keep it float32 (rssr_apps.onnx_profiles.half_network): amplitudes pass float16's 65504.
    keep_float32 = True

    def __init__(self, channels):
        super().__init__()
        self.amp_conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels),
            nn.ReLU(True),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(True),
        )
        self.amp_gate = SpatialGate()
        self.pha_conv = nn.Sequential(
            nn.Conv2d(2 * channels, 2 * channels, 3, 1, 1, groups=2 * channels),
            nn.ReLU(True),
            nn.Conv2d(2 * channels, channels, 1),
            nn.Sigmoid(),
        )
        self.pha_gate = SpatialGate()

    def forward(self, x):
        """x: (B, C, H, W) with even H -> (B, C, H, W)."""
        h, w = x.shape[-2:]
        spectrum = half_spectrum(x, -(h // 2 + 1))  # DC row moved to h/2 - 1
        if exporting():
            re, im = spectrum.unbind(0)
            amp, pha = (re.square() + im.square()).sqrt(), atan2(im, re)
        else:
            amp, pha = spectrum.abs(), spectrum.angle()
        new_amp = self.amp_conv(amp)
        new_amp = new_amp * self.amp_gate(mean_max(new_amp))
        new_pha = self.pha_conv(torch.cat([pha, new_amp - amp], dim=1))
        new_pha = (new_pha * self.pha_gate(mean_max(new_pha))) * (2 * math.pi) - math.pi
        if exporting():
            spectrum = torch.stack([new_amp * new_pha.cos(), new_amp * new_pha.sin()])
        else:
            spectrum = torch.polar(new_amp, new_pha)
        out = from_half_spectrum(spectrum, -(h // 2 - 1), (h, w)).abs()
        return (out + x).relu_()


class AGPF(nn.Module):
    """Amplitude-guided phase adaptive filter: the filter, a 3x3 conv, and a learnable-scale skip.

    Args:
        channels (int): Channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.filter = AmplitudePhaseFilter(channels)
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.res_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.conv(self.filter(x)) + self.res_scale * x


class DualDomainUnit(nn.Module):
    """Half of the channels through two RSPBs (spatial), the other half through two AGPFs (frequency).

    Args:
        channels (int): Channels (even).
        num_block (int): Residual blocks per RSPB.
    """

    def __init__(self, channels, num_block):
        super().__init__()
        half = channels // 2
        self.spatial = nn.Sequential(RSPB(half, num_block), RSPB(half, num_block))
        self.frequency = nn.Sequential(AGPF(half), AGPF(half))

    def forward(self, x):
        spa, fre = x.chunk(2, dim=1)
        return torch.cat([self.spatial(spa), self.frequency(fre)], dim=1)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    keep_float32 = True  # float16 exports (rssr_apps.onnx_profiles.half_network): normalise in float32

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W) in channels-last memory format (no copy back)."""
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class FoldedConv1x1(nn.Conv2d):
    """A bias-free 1x1 conv kept for its ``weight`` only (same state-dict key as the official conv).

    MDTA folds this projection into its attention matrix; running it as well
    would apply it twice, so calling it is an error.
    """

    def forward(self, x):
        raise RuntimeError('MDTA.project_out is folded into the attention matrix; running it would apply it twice.')


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (Restormer): attention across channels.

    Computed in the (B, H*W, C) layout the channel LayerNorm produces, so the
    convolutions run channels-last: the per-head query-key products are the
    diagonal blocks of one (C, C) Gram matrix, the L2 normalisation of queries
    and keys is applied to that matrix, and the output projection is folded
    into the per-sample attention matrix (one (C, C) product with the values).

    Args:
        channels (int): Channels.
        num_heads (int): Heads.
    """

    # float16 exports keep it float32 (rssr_apps.onnx_profiles.half_network): its Gram matrix and
    # norms sum over every pixel, past float16's 65504 on large tiles.
    keep_float32 = True

    def __init__(self, channels, num_heads=8):
        super().__init__()
        self.num_heads = num_heads
        self.norm = LayerNorm2d(channels)
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, 1, 1, groups=3 * channels, bias=False)
        self.project_out = FoldedConv1x1(channels, channels, 1, bias=False)  # folded: only its weight is read

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W) in channels-last memory format."""
        b, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        qkv = self.qkv_dwconv(self.qkv(self.norm(x)))
        q, k, v = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c).split(c, dim=-1)  # (B, N, C) views
        gram = (q.transpose(1, 2) @ k).view(b, heads, d, heads, d).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
        # F.normalize's eps (1e-12) on the norms, applied to their squares
        q_norm = q.square().sum(1).clamp_min(1e-24).sqrt().view(b, heads, d, 1)
        k_norm = k.square().sum(1).clamp_min(1e-24).sqrt().view(b, heads, 1, d)
        attn = (gram / (q_norm * k_norm) * self.temperature).softmax(dim=-1)  # (B, heads, d, d)
        mix = torch.einsum('ohd,bhde->bohe', self.project_out.weight.view(c, heads, d), attn).reshape(b, c, c)
        return (v @ mix.transpose(1, 2)).view(b, h, w, c).permute(0, 3, 1, 2)


class CFS(nn.Module):
    """Cross-feature selection: a per-pixel soft choice between two depthwise-filtered inputs.

    Args:
        channels (int): Channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.fre = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.spa = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.conv_squeeze = nn.Conv2d(2, 2, 7, padding=3)
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, guide, x):
        """guide: the first stage's decoder feature, x: this stage's feature; both (B, C, H, W)."""
        # Depthwise convs are several times faster channels-last on CPU (backward especially).
        x = self.fre(x.contiguous(memory_format=torch.channels_last))
        guide = self.spa(guide.contiguous(memory_format=torch.channels_last))
        gates = self.conv_squeeze(mean_max(x, guide)).sigmoid()
        return self.conv(torch.addcmul(x * gates[:, :1], guide, gates[:, 1:]))


class FusionBlock(nn.Module):
    """conv + MDTA on a feature, then merged with a skip: by addition, or by CFS in cross mode.

    Args:
        channels (int): Channels.
        cross (bool): Merge with CFS (the second stage's encoder) instead of adding.
    """

    def __init__(self, channels, cross=False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.attention = MDTA(channels)
        self.cfs = CFS(channels) if cross else None

    def forward(self, x, skip=None):
        x = self.conv(x.contiguous(memory_format=torch.channels_last))  # channels-last as MDTA works
        x = self.attention(x) + x
        if skip is None:
            return x
        return self.cfs(skip, x) if self.cfs is not None else skip + x


def _gaussian(rows, cols, device, dtype):
    """Gaussian on a (rows, cols//2+1) half spectrum centred at (rows/2 - 1, 0), sigma = side//2 / 3
    along each axis, zero beyond the 3-sigma search box of the official heat-map code.

    Computed from tensors only (the sizes may be symbolic while exporting), in ``dtype``: float64
    as the official Python arithmetic, float32 in exported graphs (they hold no float64 op:
    onnxruntime 1.18-1.28 lack some float64 kernels; the mask moves by float32 rounding). The box
    edges are integer comparisons either way: the official radius floor(3 * max(sigma) + 1) equals
    max(rows//2, cols//2) + 1 for every side (3 * (m / 3) == m in float64 for all m < 2e5, checked).
    """
    r = torch.arange(rows, device=device)[:, None]
    c = torch.arange(cols // 2 + 1, device=device)[None, :]
    center = rows // 2 - 1
    zero = r.new_zeros(1, 1)  # half sides as tensors: no Python number from a symbolic size
    half_rows, half_cols = zero + rows // 2, zero + cols // 2
    radius = torch.maximum(half_rows, half_cols) + 1
    sigma_rows, sigma_cols = half_rows.to(dtype) / 3, half_cols.to(dtype) / 3
    g = torch.exp(-0.5 * ((r - center).to(dtype) ** 2 / sigma_rows**2 + c.to(dtype) ** 2 / sigma_cols**2))
    inside = (r >= center - radius) & (r < center + radius) & (c < radius)
    return g * inside


def band_masks(sizes, device, features=torch.float32):
    """Frequency-band weights for the decoder levels, finest first.

    Args:
        sizes (list[tuple[int, int]]): (h, w) of each level, finest first, halving (even sides).
        features (torch.dtype): dtype of the features they weigh: while exporting, float32 ones get
            masks computed in float32 (no float64 op in exported graphs); otherwise float64, as official.

    Returns:
        list[Tensor]: (h, w//2+1) weights over the row-shifted half spectrum of
        each level: Gaussian low-pass of the level minus the (embedded)
        low-pass of the next coarser level; the finest level starts from ones,
        the coarsest keeps its whole low-pass.
    """
    dtype = torch.float32 if exporting() and features != torch.float64 else torch.float64
    lows = [_gaussian(h, w, device, dtype) for h, w in sizes]
    lows[0] = torch.ones_like(lows[0])
    masks = []
    for level, ((h, w), low) in enumerate(zip(sizes, lows)):
        if level + 1 < len(sizes):  # subtract the coarser low-pass, embedded at rows h/2 - hc/2 .. h/2 + hc/2
            (hc, wc), coarse = sizes[level + 1], lows[level + 1]
            top = h // 2 - hc // 2
            low = low - F.pad(coarse, (0, (w // 2 + 1) - (wc // 2 + 1), top, h - top - hc))
        masks.append(low.float())
    return masks


class SPB(nn.Module):
    """Cross-stage frequency-band propagation.

    The second half of the channels of the finest decoder feature is split into
    frequency bands, one per decoder level; each band (at that level's size) is
    added to the second channel half of that level's feature.

    Args:
        channels (int): Channels of the decoder features.
    """

    # float16 exports keep it float32 (rssr_apps.onnx_profiles.half_network): amplitudes pass float16's 65504.
    keep_float32 = True

    def __init__(self, channels):
        super().__init__()
        self.band_channels = channels // 2

    def forward(self, feats):
        """feats: decoder features, coarsest first, each (B, C, H/2^k, W/2^k). Returns the same list, updated."""
        finest = feats[-1]
        big_h = finest.shape[-2]
        spectrum = half_spectrum(finest[:, -self.band_channels :], -(big_h // 2 + 1))
        sizes = [tuple(f.shape[-2:]) for f in reversed(feats)]
        out = []
        for feat, (h, w), mask in zip(reversed(feats), sizes, band_masks(sizes, finest.device, finest.dtype)):
            band = spectrum[..., big_h // 2 - h // 2 : big_h // 2 + h // 2, : w // 2 + 1] * mask
            band = from_half_spectrum(band, -(h - h // 2 - 1), (h, w))
            head, tail = feat.split([feat.shape[1] - self.band_channels, self.band_channels], dim=1)
            out.append(torch.cat([head, tail + band], dim=1))
        return out[::-1]


class UNetStage(nn.Module):
    """One stage: a 3-level U-Net of dual-domain units predicting a residual on its input image.

    Args:
        num_feat (int): Channels.
        num_block (int): Residual blocks per RSPB.
        num_in_ch (int): Image channels in.
        num_out_ch (int): Image channels out.
        guided (bool): Second stage: encoder fusion with CFS on the first stage's decoder features.
    """

    def __init__(self, num_feat, num_block, num_in_ch, num_out_ch, guided):
        super().__init__()
        self.head = conv_prelu(num_in_ch, num_feat)
        self.encoder_fusions = nn.ModuleList(FusionBlock(num_feat, cross=guided) for _ in range(NUM_LEVELS + 1))
        self.downs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False),
                nn.PixelUnshuffle(2),
                nn.Conv2d(4 * num_feat, num_feat, 1, bias=False),
            )
            for _ in range(NUM_LEVELS)
        )
        self.encoder_units = nn.ModuleList(DualDomainUnit(num_feat, num_block) for _ in range(NUM_LEVELS))
        self.neck = DualDomainUnit(num_feat, num_block)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat, 4 * num_feat, 1), nn.PixelShuffle(2), nn.PReLU())
            for _ in range(NUM_LEVELS)
        )
        self.decoder_units = nn.ModuleList(DualDomainUnit(num_feat, num_block) for _ in range(NUM_LEVELS))
        self.decoder_fusions = nn.ModuleList(FusionBlock(num_feat) for _ in range(NUM_LEVELS + 1))
        self.tail = conv_prelu(num_feat, num_out_ch)

    def forward(self, img, guides=None):
        """img: (B, C, H, W); guides: the first stage's decoder features, finest first, or None.

        Returns:
            tuple: the refined image (B, C, H, W) and the decoder features, coarsest first.
        """
        guides = guides or [None] * (NUM_LEVELS + 1)
        x = self.encoder_fusions[0](self.head(img), guides[0])
        skips = [x]
        for down, unit, fusion, guide in zip(self.downs, self.encoder_units, self.encoder_fusions[1:], guides[1:]):
            x = fusion(unit(down(x)), guide)
            skips.append(x)
        x = self.decoder_fusions[0](self.neck(x), skips.pop())
        decoded = [x]
        for up, unit, fusion in zip(self.ups, self.decoder_units, self.decoder_fusions[1:]):
            x = fusion(unit(up(x)), skips.pop())
            decoded.append(x)
        return self.tail(x) + img, decoded


@ARCH_REGISTRY.register()
class TSFNet(nn.Module):
    """TSFNet: two-stage spatial-frequency network (Wang et al.).

    Takes the LR image in [0, 1]. In training mode it returns
    ``(final, stage1)``, both (B, C, upscale*H, upscale*W), for deep
    supervision; in eval mode only ``final``. Any input size: the LR image is
    padded so that the HR grid is a multiple of 16 (the U-Net's three
    halvings plus even spectra) and the outputs are cropped back.

    Args:
        upscale (int): Upscale factor (any positive integer; the paper uses 8
            and 16). Default: 8.
        num_feat (int): Channels (official ``num_features``). Default: 64.
        num_block (int): Residual blocks per RSPB (official
            ``base_num_every_group``). Default: 2.
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels (equal to num_in_ch: both stages
            add their residual to the image). Default: 3.
    """

    def __init__(
        self,
        upscale: Upscale = 8,
        num_feat: Channels = 64,
        num_block: Count = 2,
        num_in_ch: Channels = 3,
        num_out_ch: Channels = 3,
    ):
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError('TSFNet predicts a residual on its input, so num_out_ch must equal num_in_ch.')
        self.upscale = upscale
        self.pad_multiple = HR_MULTIPLE // math.gcd(HR_MULTIPLE, upscale)  # input sides are padded to it (as FAT's)
        self.stages = nn.ModuleList(
            UNetStage(num_feat, num_block, num_in_ch, num_out_ch, guided=i == 1) for i in range(2)
        )
        self.band_propagation = SPB(num_feat)
        record_options(self, upscale_factor=upscale)  # no weight shape shows it (rssr_arch.spandrel reads it)

    def forward(self, x):
        """x: (B, C, H, W) LR in [0, 1]."""
        h, w = x.shape[-2:]
        img = F.interpolate(pad_to_multiple(x, self.pad_multiple), scale_factor=self.upscale, mode='nearest')
        stage1, decoded = self.stages[0](img)
        guides = self.band_propagation(decoded)[::-1]
        final, _ = self.stages[1](stage1, guides)
        crop = (Ellipsis, slice(0, h * self.upscale), slice(0, w * self.upscale))
        return (final[crop], stage1[crop]) if self.training else final[crop]
