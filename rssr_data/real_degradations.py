"""Real-ESRGAN's second-order degradation, seeded per image, for offline LR images and on-the-fly training.

The pipeline is Real-ESRGAN's (``RealESRGANDataset`` draws the kernels,
``RealESRNetModel.feed_data`` applies them), built from BasicSR's blocks:
``random_mixed_kernels`` / ``circular_lowpass_kernel`` for the blur and sinc
kernels, ``filter2D`` for blurring, ``add_gaussian_noise_pt`` /
``add_poisson_noise_pt`` for noise, ``DiffJPEG`` for JPEG and ``USMSharp``'s
sharpening. Per HR image::

    [USM sharpen] -> blur k1 -> random resize -> noise -> JPEG             (first order)
    [blur k2] -> random resize to HR/scale x r -> noise                    (second order)
    {resize to HR/scale + sinc -> JPEG} or {JPEG -> resize + sinc}         (final, order drawn)
    -> round to the HR's bit depth

What rssr adds:

* Every random choice of an image is drawn by :func:`sample_degradation` up
  front (kernels, resize factors and modes, noise type/strength/gray and a
  noise seed, JPEG qualities, the final order) and applied by
  :class:`RealDegradation`. BasicSR's functions draw from the global RNGs;
  :func:`seeded` runs them on a state seeded by :func:`image_seed` (the run's
  seed and the image's key) and restores the previous state, and the noise
  fields are drawn under ``torch.random.fork_rng`` seeded by the drawn noise
  seed. So an image's LR depends on (seed, key) only: not on the batch it is
  in, the worker that makes it or the images made before it.
* Each image gets its own resize factors (Real-ESRGAN shares one per batch
  and mixes batches through a queue of 180 pairs); images of one shape are
  batched through the HR-size part (sharpening and first blur).
* Every parameter is in a config (:data:`DEFAULTS` = Real-ESRGAN's
  ``train_realesrnet_x4plus.yml``); ``blur_prob``, ``noise_prob`` /
  ``noise_prob2``, ``jpeg_prob`` / ``jpeg_prob2`` (default 1, as Real-ESRGAN)
  switch stages off, ``kernel_range`` and ``resize_modes`` are Real-ESRGAN's
  hard-coded choices made configurable, and three layout keys describe the FAT
  repository's variant (:data:`PRESETS` ``fat``).
* Sharpening uses BasicSR's 51x51 ``USMSharp`` kernel as two 1-D passes
  (:class:`SeparableUSMSharp`): the same result to 3e-6, about 10x faster on CPU.
* 16-bit images stay 16-bit: the pipeline works on floats in [0, 1] and the
  result is rounded to the HR's integer type.
"""

import rssr_compat  # noqa: F401

import numpy as np
import torch
from basicsr.data.degradations import (
    add_gaussian_noise_pt,
    add_poisson_noise_pt,
)
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.img_process_util import filter2D
from torch.nn import functional as F

from .degradation_draws import pulse


class SeparableUSMSharp(USMSharp):
    """BasicSR's :class:`~basicsr.utils.USMSharp` with its Gaussian blur done as two 1-D passes.

    The 2-D kernel of ``USMSharp`` is the outer product of one 1-D Gaussian,
    so a vertical then a horizontal pass give the same blur (to float rounding,
    about 3e-6) for ``2 radius`` instead of ``radius^2`` multiplications a pixel.

    Args:
        radius (int): Kernel size of the Gaussian blur. Default: 50 (51 after making it odd).
        sigma (float): Its standard deviation (0: OpenCV's choice from the size). Default: 0.
    """

    def __init__(self, radius=50, sigma=0):
        super().__init__(radius, sigma)
        import cv2

        column = torch.from_numpy(cv2.getGaussianKernel(self.radius, sigma)).float().view(1, 1, self.radius, 1)
        self.register_buffer('column', column)

    def blur(self, img):
        """Gaussian blur with reflected borders (as ``filter2D``). img: (B, C, H, W)."""
        b, c, h, w = img.shape
        pad, n = self.radius // 2, b * c
        # every channel of every image as a channel of one image: depthwise convs are the fast path on CPU
        out = F.pad(img, (pad, pad, pad, pad), mode='reflect').view(1, n, h + 2 * pad, w + 2 * pad)
        column = self.column.expand(n, 1, self.radius, 1)
        out = F.conv2d(out, column, groups=n)
        out = F.conv2d(out, column.reshape(n, 1, 1, self.radius), groups=n)
        return out.view(b, c, h, w)

    def forward(self, img, weight=0.5, threshold=10):
        """USM sharpening as BasicSR's; img: (B, C, H, W) in [0, 1]."""
        residual = img - self.blur(img)
        mask = (torch.abs(residual) * 255 > threshold).float()
        soft_mask = self.blur(mask)
        sharp = torch.clip(img + weight * residual, 0, 1)
        return soft_mask * sharp + (1 - soft_mask) * img


def check_size(cfg, scale, h, w, name):
    """Raise :class:`~rssr_utils.image_io.ImageError` naming ``name`` when an h x w HR cannot be degraded.

    The HR must be a multiple of ``scale``, and every filter needs an image larger
    than half its size (reflected borders) at the smallest size the draws can reach.
    """
    from rssr_utils.image_io import ImageError

    if h % scale or w % scale:
        raise ImageError(
            f'{name}: {h}x{w} is not divisible by the scale {scale}; crop the HR to a multiple of it first '
            '(rssr_data.degradations.mod_crop does it, prepare_dataset.py writes such copies).'
        )
    side = min(h, w)
    first = int(side * min(cfg['resize_range'][0], 1))  # after the first random resize
    base = side / (cfg['mid_downscale'] or scale)
    second = int(base * min(cfg['resize_range2'][0], 1) ** cfg['resize2_power'])
    needs = [
        (side, cfg['blur_kernel_size'], 'first blur'),
        (int(base) if cfg['mid_downscale'] else first, cfg['blur_kernel_size2'], 'second blur'),
        (second if cfg['final_resize_last'] else side // scale, cfg['blur_kernel_size'], 'final sinc filter'),
    ]
    if cfg['usm_sharpen']:
        needs.append((side, 51, 'USM sharpening'))
    for size, kernel, what in needs:
        if size <= kernel // 2:
            raise ImageError(
                f'{name}: {h}x{w} is too small for this degradation at x{scale}: the {what} ({kernel}x{kernel}) '
                f'can meet an image of {size} pixels; use larger HR images (or crops), a smaller scale, '
                'or raise resize_range / resize_range2.'
            )


class RealDegradation(torch.nn.Module):
    """Applies drawn degradations (:func:`sample_degradation`) to HR images, on their device.

    Everything random is in the draws (including the layout keys of the config),
    so one module serves any config and the model that trains with it needs none.

    Args:
        scale (int): Downscaling factor: LR = HR // scale.
    """

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.jpeger = DiffJPEG(differentiable=False)
        self.usm_sharpener = SeparableUSMSharp()

    @torch.no_grad()
    def forward(self, hr, draws, sharp=None):
        """Degrade a batch.

        Args:
            hr (Tensor): (B, 3, H, W) RGB in [0, 1].
            draws (list[dict]): B draws (:func:`sample_degradation` or :func:`unbatch`).
            sharp (Tensor | None): ``self.usm_sharpener(hr)`` when the caller has it already
                (a model training towards the sharpened HR), so it is not computed twice.

        Returns:
            Tensor: (B, 3, H // scale, W // scale) in [0, 1], not yet rounded (see :func:`quantize`).
        """
        sharpen = [bool(d['usm_sharpen']) for d in draws]
        out = hr
        if any(sharpen):
            sharp = self.usm_sharpener(hr) if sharp is None else sharp
            out = sharp if all(sharpen) else torch.stack([s if u else h for s, h, u in zip(sharp, hr, sharpen)])
        # The HR-size blur, batched: each image its own kernel (a pulse, which changes nothing, when blur1 is off).
        kernels = [_tensor(d['kernel1'] if d['blur1'] else pulse(len(d['kernel1'])), hr) for d in draws]
        out = filter2D(out, torch.stack(kernels))
        return torch.cat([self._rest(out[i : i + 1], d, hr.shape[2:]) for i, d in enumerate(draws)])

    def _noise(self, img, d, stage):
        kind = d[f'noise{stage}_type']
        if kind == 'none':
            return img
        cuda = img.device.type == 'cuda'
        with torch.random.fork_rng(devices=[img.device.index or 0] if cuda else []):
            torch.manual_seed(int(d[f'noise{stage}_seed']))
            strength, gray = float(d[f'noise{stage}_strength']), int(bool(d[f'noise{stage}_gray']))
            if kind == 'gaussian':
                return add_gaussian_noise_pt(img, sigma=strength, gray_noise=gray, clip=True, rounds=False)
            return add_poisson_noise_pt(img, scale=strength, gray_noise=gray, clip=True, rounds=False)

    def _jpeg(self, img, quality):
        img = torch.clamp(img, 0, 1)  # as Real-ESRGAN: DiffJPEG of values outside [0, 1] gives artifacts
        return self.jpeger(img, quality=img.new_tensor([float(quality)])) if quality else img

    @staticmethod
    def _sinc(img, d):
        return filter2D(img, _tensor(d['sinc_kernel'], img)[None])

    def _rest(self, out, d, hr_size):
        """Everything after the first blur, for one image: out (1, 3, H, W) -> (1, 3, H // scale, W // scale)."""
        h, w = hr_size
        lr_size = (h // self.scale, w // self.scale)
        out = F.interpolate(out, scale_factor=float(d['resize1']), mode=d['mode1'])
        out = self._noise(out, d, 1)
        out = self._jpeg(out, d['jpeg1'])
        mid = float(d['mid_downscale'])
        if mid:
            out = F.interpolate(out, size=(int(h / mid), int(w / mid)), mode=d['mode_mid'])
        base = (h / (mid or self.scale), w / (mid or self.scale))
        if d['blur2']:
            out = filter2D(out, _tensor(d['kernel2'], out)[None])
        factor = float(d['resize2']) ** int(d['resize2_power'])
        out = F.interpolate(out, size=(int(base[0] * factor), int(base[1] * factor)), mode=d['mode2'])
        out = self._noise(out, d, 2)

        def resize(x):
            return F.interpolate(x, size=lr_size, mode=d['mode_final'])

        if d['final_resize_last']:  # the FAT tool: sinc and JPEG at this size, then one resize
            steps = [lambda x: self._sinc(x, d), lambda x: self._jpeg(x, d['jpeg2'])]
            for step in steps if d['sinc_first'] else steps[::-1]:
                out = step(out)
            out = resize(out)
        elif d['sinc_first']:
            out = self._jpeg(self._sinc(resize(out), d), d['jpeg2'])
        else:
            out = self._sinc(resize(self._jpeg(out, d['jpeg2'])), d)
        return torch.clamp(out, 0, 1)


def _tensor(array, like):
    return torch.as_tensor(np.asarray(array) if not torch.is_tensor(array) else array, dtype=like.dtype).to(like.device)


def quantize(lr, peak=255):
    """Round to ``peak + 1`` levels as Real-ESRGAN does for 8 bits.

    Args:
        lr (Tensor): (B, C, H, W) in [0, 1].
        peak (float | Tensor): 255, 65535, or a (B, 1, 1, 1) tensor of them.
    """
    out = (lr * peak).round().clamp(min=0)
    return (torch.minimum(out, peak) if torch.is_tensor(peak) else out.clamp(max=peak)) / peak
