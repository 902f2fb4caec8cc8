"""FAT: frequency-aware transformer for remote-sensing super-resolution.

Yan et al., "Mitigating Texture Bias: A Remote Sensing Super-Resolution Method
Focusing on High-Frequency Texture Reconstruction", IEEE TGRS 2025.

Shallow convolutions, a U-shaped attention fusion block (UAFB), then SRT blocks:
window-attention Swin layers, a mixed attention (MAT) layer whose window is
twice as large and which adds Fourier sparse self-attention (FSSA), a conv and
a block-level FSSA. FSSA runs LSH-bucketed non-local attention on the real and
imaginary parts of the feature spectrum.
"""

import math
from typing import Literal, Optional, Union

import torch
from basicsr.archs.arch_util import to_2tuple, trunc_normal_
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from .arch_util import (
    Channels,
    Count,
    Positive,
    Ratio,
    exporting,
    irfft2_real,
    pad_to_multiple,
    record_options,
    remainder,
    rfft2_real,
)


class ChannelAttention(nn.Module):
    """ECA-style channel attention: a 1-D conv across the pooled channel vector.

    Args:
        channels (int): Channels the kernel size is derived from.
    """

    def __init__(self, channels):
        super().__init__()
        k = int(abs((math.log(channels, 2) + 1) / 2))
        k = k if k % 2 else k + 1
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        """x: (B, C, H, W), any C."""
        y = self.conv(x.mean(dim=(2, 3)).unsqueeze(1))  # (B, 1, C)
        return x * torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)


class SpatialAttention(nn.Module):
    """Gate from the channel-wise mean and max maps through a 3x3 conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def forward(self, x):
        """x: (B, C, H, W)."""
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(stats))


class UAFB(nn.Module):
    """U-shaped attention fusion block: a half-resolution branch fused with the full-resolution one.

    Args:
        channels (int): Feature channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.down_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.up_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.up_transpose = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        self.sa_low = SpatialAttention()
        self.sa_high = SpatialAttention()
        self.ca = ChannelAttention(channels)
        self.fuse_conv = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x):
        """x: (B, C, H, W) with even H, W."""
        high = F.leaky_relu(self.down_conv(x), 0.2)
        low = self.sa_low(F.leaky_relu(self.up_conv(F.max_pool2d(high, 2)), 0.2))
        fused = self.ca(torch.cat([self.up_transpose(low), self.sa_high(high)], dim=1))
        return self.fuse_conv(fused) + x


class LSHSparseAttention(nn.Module):
    """Non-local attention within locality-sensitive-hashing buckets (NLSA-style).

    Args:
        channels (int): Input channels.
        n_hashes (int): Hash rounds.
        reduction (int): Channel reduction of the matching embedding.
        chunk_size (int): Tokens per attention chunk.
        seed (int): Seed of the fixed rotations used in deterministic eval.
        deterministic_eval (bool): In eval mode, hash with the rotations drawn
            from ``seed``; otherwise (and always in training) draw them from the
            global RNG at every call, as the official code. Default: False.
    """

    max_buckets = 64

    def __init__(self, channels, n_hashes=4, reduction=4, chunk_size=144, seed=0, deterministic_eval=False):
        super().__init__()
        self.n_hashes = n_hashes
        self.chunk_size = chunk_size
        self.seed = seed
        self.deterministic_eval = deterministic_eval
        self.conv_match = nn.Conv2d(channels, channels // reduction, 3, padding=1)
        self.conv_assembly = nn.Conv2d(channels, channels, 1)

    @property
    def fixed_rotations(self):
        """True in deterministic eval: seeded rotations (the export table holds them) and a stable bucket sort."""
        return self.deterministic_eval and not self.training

    def _rotations(self, shape, like):
        if exporting():
            return self._exported_rotations(shape, like)
        if self.fixed_rotations:
            generator = torch.Generator(device=like.device).manual_seed(self.seed)
            return torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
        # Drawn from the global RNG once per call, as the official code does.
        return torch.randn(shape, dtype=like.dtype, device=like.device)

    def prepare_export(self):
        """Draw every deterministic-eval rotation an input can ask for into the buffer ``rotation_table``.

        The bucket count depends on the input size, and a tensor drawn from a
        seeded generator is not a prefix of a larger one drawn from the same
        seed, so the rotations of each of the ``max_buckets // 2`` possible
        shapes (1, Cm, n_hashes, k) are drawn on the CPU as deterministic eval
        draws them there, flattened and concatenated (k = 1 first). Exported
        graphs slice them from the table: the same values as eager CPU
        inference, without a random op.
        """
        if not self.fixed_rotations:
            raise ValueError(
                'FAT exports need deterministic_eval: true and eval mode (the official draws new '
                'random rotations on every call, which an exported graph cannot reproduce).'
            )
        matched = self.conv_match.out_channels
        draws = [
            torch.randn((matched * self.n_hashes * k,), generator=torch.Generator().manual_seed(self.seed))
            for k in range(1, self.max_buckets // 2 + 1)
        ]
        table = torch.cat(draws).to(self.conv_match.weight)
        self.register_buffer('rotation_table', table, persistent=False)

    def _exported_rotations(self, shape, like):
        """The (1, Cm, n_hashes, k) rotations of :meth:`prepare_export`'s table (k may be symbolic)."""
        if getattr(self, 'rotation_table', None) is None:
            raise RuntimeError('FAT export: call rssr_arch.arch_util.prepare_export(net) before tracing.')
        _, matched, rounds, k = shape
        size = matched * rounds
        return self.rotation_table.narrow(0, size * (k - 1) * k // 2, size * k).view(shape).to(like.dtype)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H, W), with a residual connection."""
        n, _, h, w = x.shape
        length, chunk, rounds = h * w, self.chunk_size, self.n_hashes
        match = self.conv_match(x).flatten(2).transpose(1, 2)  # (N, L, Cm)
        assembly = self.conv_assembly(x).flatten(2).transpose(1, 2)  # (N, L, C)

        # Hash: argmax over [R v, -R v] for a random rotation R, one bucket set per round.
        buckets = max(min(length // chunk + (length // chunk) % 2, self.max_buckets), 2)
        rotations = self._rotations((1, match.shape[-1], rounds, buckets // 2), match)
        rotated = torch.einsum('btf,fhi->bhti', match, rotations[0])
        codes = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # (N, rounds, L)
        codes = codes + torch.arange(rounds, device=x.device).view(1, -1, 1) * buckets
        # Deterministic eval sorts stably: the order inside a bucket, which decides the chunks, then
        # depends on nothing but the codes, as in exported graphs (ONNX TopK breaks ties by index;
        # the exporter has no stable sort). The official sort is unstable.
        if torch.compiler.is_exporting():
            order = codes.flatten(1).sort(dim=-1).indices
        else:
            stable = exporting() or self.fixed_rotations
            order = codes.flatten(1).sort(dim=-1, stable=stable).indices  # (N, rounds*L)
        undo = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=x.device).expand_as(order)
        )
        token = remainder(order, length)

        n_chunks = (length + chunk - 1) // chunk

        def sorted_chunks(values):
            values = values.gather(1, token.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
            values = values.view(n, rounds, length, -1)
            pad = n_chunks * chunk - length
            if exporting() or pad:  # repeat the last sorted tokens of each round to fill the last chunk
                tail = remainder(torch.arange(length - pad, length, device=x.device), length)
                values = torch.cat([values, values[:, :, tail]], dim=2)
            return values.view(n, rounds, n_chunks, chunk, values.shape[-1])

        def with_neighbours(chunks):  # attend to the previous and next chunk too
            return torch.cat([chunks, chunks.roll(1, dims=2), chunks.roll(-1, dims=2)], dim=3)

        query = sorted_chunks(match)
        key = with_neighbours(F.normalize(query, p=2, dim=-1, eps=5e-5))
        value = with_neighbours(sorted_chunks(assembly))
        out, lse = (
            exported_chunk_attention(query, key, value) if exporting() else ChunkAttention.apply(query, key, value)
        )

        out = out.reshape(n, rounds, -1, out.shape[-1])[:, :, :length].reshape(n, rounds * length, -1)
        lse = lse.reshape(n, rounds, -1)[:, :, :length].reshape(n, rounds * length)
        out = out.gather(1, undo.unsqueeze(-1).expand(-1, -1, out.shape[-1])).view(n, rounds, length, -1)
        weights = lse.gather(1, undo).view(n, rounds, length, 1).softmax(dim=1)
        out = (out * weights).sum(dim=1)  # (N, L, C)
        return out.transpose(1, 2).reshape(n, -1, h, w) + x


class FourierSparseSelfAttention(nn.Module):
    """FSSA: sparse attention on the stacked real/imaginary parts of the 2-D real FFT.

    Args:
        channels (int): Feature channels C (the attention sees 2C).
        n_hashes (int): Hash rounds.
        reduction (int): Channel reduction of the matching embedding.
        chunk_size (int): Tokens per attention chunk.
        seed (int): Seed of the fixed rotations used in deterministic eval.
        deterministic_eval (bool): See :class:`LSHSparseAttention`. Default: False.
    """

    # float16 exports keep it float32 (rssr_apps.onnx_profiles.half_network): it hashes spectra.
    keep_float32 = True

    def __init__(self, channels, n_hashes=4, reduction=4, chunk_size=144, seed=0, deterministic_eval=False):
        super().__init__()
        self.attention = LSHSparseAttention(2 * channels, n_hashes, reduction, chunk_size, seed, deterministic_eval)

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        if exporting():  # real-valued DFTs (see rssr_arch.arch_util)
            spectrum = torch.stack(rfft2_real(x, norm='ortho'), dim=2).reshape(b, 2 * c, h, -1)
            re, im = self.attention(spectrum).view(b, c, 2, h, -1).unbind(2)
            return irfft2_real(re, im, (h, w), norm='ortho')
        spectrum = torch.view_as_real(torch.fft.rfft2(x, norm='ortho'))  # (B, C, H, W//2+1, 2)
        spectrum = spectrum.permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, -1)
        spectrum = self.attention(spectrum).view(b, c, 2, h, -1).permute(0, 1, 3, 4, 2).contiguous()
        return torch.fft.irfft2(torch.view_as_complex(spectrum), s=(h, w), norm='ortho')


def window_attention(q, k, v, bias, fused=None):
    """softmax(q k^T / sqrt(d) + bias) v for (B, heads, N, d) q, k, v and a (heads, N, N) bias.

    ``fused`` (default: on GPUs) uses ``scaled_dot_product_attention``; on CPU
    its float-mask path checks the mask and is slower than the plain products.
    """
    if fused is None:
        fused = q.is_cuda
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias).softmax(dim=-1) @ v


class ChunkAttention(torch.autograd.Function):
    """softmax(q k^T) v and the log-sum-exp of each score row, with a flash-attention style backward.

    q: (..., I, E), k: (..., J, E), v: (..., J, F) -> (..., I, F) and (..., I, 1).
    Keeps only the probabilities for backward (not the scores or their exponentials).
    """

    @staticmethod
    def forward(ctx, q, k, v):
        scores = q @ k.transpose(-2, -1)
        lse = scores.logsumexp(dim=-1, keepdim=True)
        probs = scores.sub_(lse).exp_()
        out = probs @ v
        ctx.save_for_backward(q, k, v, probs, out)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, probs, out = ctx.saved_tensors
        # d lse / d scores = probs, so the lse gradient enters like the softmax's row term
        rows = (grad_out * out).sum(dim=-1, keepdim=True) - grad_lse
        grad_scores = (grad_out @ v.transpose(-2, -1)).sub_(rows).mul_(probs)
        return grad_scores @ k, grad_scores.transpose(-2, -1) @ q, probs.transpose(-2, -1) @ grad_out


def exported_chunk_attention(q, k, v):
    """:class:`ChunkAttention`'s forward for exported graphs, from one Softmax (a fused kernel in every
    runtime; onnxruntime's ReduceLogSumExp took a third of FAT's time): probs = softmax(scores), and
    since max(probs) = exp(max(scores) - lse), lse = max(scores) - log(max(probs)) (max(probs) >= 1/J).
    """
    scores = q @ k.transpose(-2, -1)
    probs = scores.softmax(dim=-1)
    lse = scores.amax(dim=-1, keepdim=True) - probs.amax(dim=-1, keepdim=True).log()
    return probs @ v, lse


class WindowAttention(nn.Module):
    """Multi-head self-attention in non-overlapping windows with a relative position bias.

    Args:
        dim (int): Channels.
        window_size (int): Window side.
        num_heads (int): Attention heads.
    """

    def __init__(self, dim, window_size, num_heads):
        super().__init__()
        self.window_size = to_2tuple(window_size)
        self.num_heads = num_heads
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        index = (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1
        self.register_buffer('relative_position_index', index, persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x):
        """x: (num_windows*B, N, C) with N = window area."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1).to(q.dtype)
        return self.proj(window_attention(q, k, v, bias).transpose(1, 2).reshape(b, n, c))


class SwinLayer(nn.Module):
    """Window attention + MLP; as the MAT layer it also adds FSSA of the token map.

    Args:
        dim (int): Channels.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        mlp_ratio (float): MLP hidden width / dim.
        fssa (nn.Module | None): FSSA of the mixed attention (MAT) layer, or None.
    """

    def __init__(self, dim, num_heads, window_size, mlp_ratio, fssa=None):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.fssa = fssa

    def forward(self, x, size):
        """x: (B, H*W, C) tokens, size: (H, W), multiples of the window."""
        h, w = size
        b, _, c = x.shape
        ws = self.window_size
        windows = self.norm1(x).view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        attn = self.attn(windows).view(b, h // ws, w // ws, ws, ws, c).transpose(2, 3).reshape(b, h * w, c)
        if self.fssa is not None:
            # The released weights were trained on the tokens reshaped as-is (not transposed) to (B, C, H, W).
            attn = attn + self.fssa(x.reshape(b, c, h, w)).reshape(b, h * w, c)
        x = x + attn
        return x + self.mlp(self.norm2(x))


class SRTBlock(nn.Module):
    """Swin layers, the MAT layer (doubled window, with FSSA), a conv and a block-level FSSA.

    Args:
        dim (int): Channels.
        depth (int): Swin layers before the MAT layer.
        num_heads (int): Attention heads.
        window_size (int): Window of the Swin layers (the MAT layer uses twice it).
        mlp_ratio (float): MLP hidden width / dim.
        fssa_opt (dict): chunk_size, reduction, deterministic_eval, hashes (block FSSA),
            mat_hashes (MAT FSSA).
        seed (int): Base seed of this block's deterministic-eval rotations.
    """

    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio, fssa_opt, seed):
        super().__init__()
        fssa = {k: fssa_opt[k] for k in ('reduction', 'chunk_size', 'deterministic_eval')}
        mat_fssa = FourierSparseSelfAttention(dim, fssa_opt['mat_hashes'], seed=seed, **fssa)
        self.layers = nn.ModuleList(
            [SwinLayer(dim, num_heads, window_size, mlp_ratio) for _ in range(depth)]
            + [SwinLayer(dim, num_heads, 2 * window_size, mlp_ratio, mat_fssa)]
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.fssa = FourierSparseSelfAttention(dim, fssa_opt['hashes'], seed=seed + 1, **fssa)

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            tokens = layer(tokens, (h, w))
        return self.fssa(self.conv(tokens.transpose(1, 2).reshape(b, c, h, w)))


def make_upsampler(scale, in_ch, width):
    """FAT's upsampler (without its last conv): x4 two conv+shuffle steps, x3 one, x2/x8 conv-lrelu-conv-shuffle."""
    if scale == 4:
        return nn.Sequential(
            nn.Conv2d(in_ch, 4 * width, 3, 1, 1),
            nn.PixelShuffle(2),
            nn.Conv2d(width, 4 * width, 3, 1, 1),
            nn.PixelShuffle(2),
        )
    if scale == 3:
        return nn.Sequential(nn.Conv2d(in_ch, 9 * width, 3, 1, 1), nn.PixelShuffle(3))
    if scale in (2, 8):
        return nn.Sequential(
            nn.Conv2d(in_ch, width, 3, 1, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(width, scale**2 * width, 3, 1, 1),
            nn.PixelShuffle(scale),
        )
    raise ValueError(f'FAT supports upscale 2, 3, 4 and 8, not {scale}.')


@ARCH_REGISTRY.register()
class FAT(nn.Module):
    """FAT: frequency-aware transformer (Yan et al., TGRS 2025).

    Takes and returns BasicSR images in [0, 1]; internally, as the authors,
    it works on images in [-1, 1]. Any input size: the input is padded to a
    multiple of the largest attention window (and of 2 for the UAFB) and the
    output cropped to exactly ``upscale`` x the input.

    Args:
        upscale (int): 2, 3, 4 or 8. Default: 4.
        embed_dim (int): Feature channels. Default: 128.
        num_blocks (int): SRT blocks. Default: 6.
        depth (int): Swin layers per SRT block before its MAT layer. Default: 3.
        num_heads (int): Attention heads. Default: 8.
        window_size (int | list[int]): Swin window, one for all blocks or one
            per block; each MAT layer uses twice its block's. Default: 6.
        mlp_ratio (float): MLP hidden width / embed_dim. Default: 4.0.
        deterministic_eval (bool): In eval mode, draw the FSSA hash rotations
            from fixed per-module seeds, so inference is reproducible. If False,
            they come from the global RNG in every mode, as in the official
            code. Training always uses the global RNG. Default: True.
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        upsampler_width (int | None): Upsampler channels; None = embed_dim
            (the official x4 upsampler requires them equal). Default: None.
        fssa_chunk_size (int): FSSA tokens per chunk. Default: 144.
        fssa_reduction (int): FSSA matching-embedding reduction. Default: 4.
        fssa_hashes (int): Hash rounds of each block's FSSA. Default: 4.
        mat_fssa_hashes (int): Hash rounds of each MAT layer's FSSA. Default: 2.
    """

    def __init__(
        self,
        upscale: Literal[2, 3, 4, 8] = 4,
        embed_dim: Channels = 128,
        num_blocks: Count = 6,
        depth: Count = 3,
        num_heads: Count = 8,
        window_size: Union[Count, list[Count]] = 6,
        mlp_ratio: Ratio = 4.0,
        deterministic_eval: bool = True,
        num_in_ch: Channels = 3,
        num_out_ch: Channels = 3,
        upsampler_width: Optional[Channels] = None,
        fssa_chunk_size: Positive = 144,
        fssa_reduction: Count = 4,
        fssa_hashes: Count = 4,
        mat_fssa_hashes: Count = 2,
    ):
        super().__init__()
        windows = [window_size] * num_blocks if isinstance(window_size, int) else list(window_size)
        if len(windows) != num_blocks:
            raise ValueError(f'window_size has {len(windows)} entries for {num_blocks} SRT blocks.')
        width = upsampler_width or embed_dim
        self.upscale = upscale
        # No weight shape shows these (rssr_arch.spandrel reads them).
        record_options(self, fssa_chunk_size=fssa_chunk_size, fssa_hashes=fssa_hashes, mat_fssa_hashes=mat_fssa_hashes)
        # Inputs are padded to this multiple: every window and MAT window, and the UAFB's 2x pooling.
        self.pad_multiple = math.lcm(2, *(2 * w for w in windows))
        self.shallow = nn.Sequential(nn.Conv2d(num_in_ch, num_in_ch, 3, 1, 1), nn.Conv2d(num_in_ch, embed_dim, 1))
        self.uafb = UAFB(embed_dim)
        fssa_opt = dict(
            chunk_size=fssa_chunk_size,
            reduction=fssa_reduction,
            hashes=fssa_hashes,
            mat_hashes=mat_fssa_hashes,
            deterministic_eval=deterministic_eval,
        )
        self.blocks = nn.ModuleList(
            SRTBlock(embed_dim, depth, num_heads, w, mlp_ratio, fssa_opt, seed=2 * i) for i, w in enumerate(windows)
        )
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = make_upsampler(upscale, embed_dim, width)
        self.conv_last = nn.Conv2d(width, num_out_ch, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        """x: (B, C, H, W) in [0, 1] -> (B, C, upscale*H, upscale*W) in [0, 1]."""
        h, w = x.shape[-2:]
        x = pad_to_multiple(x * 2 - 1, self.pad_multiple)
        shallow = self.shallow(x)
        feat = self.uafb(shallow)
        for block in self.blocks:
            feat = block(feat)
        out = self.conv_last(self.upsample(self.conv_after_body(feat) + shallow))
        return (out[..., : h * self.upscale, : w * self.upscale] + 1) / 2
