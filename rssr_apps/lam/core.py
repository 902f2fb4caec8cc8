"""Local attribution maps: path-integrated gradients along a Gaussian-blur path, and the diffusion index.

After Gu & Dong, "Interpreting Super-Resolution Networks with Local Attribution
Maps" (CVPR 2021), and the facts of the LAM tool the FAT repository points to
(github ``fengyanzi/Local-Attribution-Map-for-Super-Resolution``, ``lam/core.py``
and ``lam/utils.py``). Where this module follows that tool and where it differs:

* Path: the same. Blur sigmas ``linspace(sigma, 0, steps + 1)`` (default 1.2 to
  0 in 50 steps), isotropic Gaussian kernels of odd side ``kernel_size``
  (default 9) with ``1e-5`` added to sigma, so the last kernel is a delta and
  the last path point is the image itself; the first point (sigma 1.2) is the
  baseline. Borders reflect without repeating the edge (OpenCV's default
  ``BORDER_REFLECT_101``, which the tool's ``cv2.filter2D`` uses).
* Riemann sum: the same right-endpoint sum. The tool evaluates the gradient at
  the point of step ``i`` (the less blurred end) and multiplies it by
  ``steps * blur(image, k_i - k_{i-1})``, then averages over steps; by linearity
  of the blur that is ``sum_i grad F(x_i) * (x_i - x_{i-1})``, which is what
  :func:`path_attribution` sums (it subtracts the blurred images instead of
  blurring with the kernel difference: equal up to float rounding).
* Objective: the same. The sum, over channels and the window's pixels, of the
  SR output's gradient magnitude ``sqrt((o[y, x] - o[y+1, x])^2 + (o[y, x] - o[y, x+1])^2)``
  (:func:`window_gradient_objective`). Where that magnitude is exactly 0 its
  derivative is taken as 0; the tool instead lets the NaN from ``sqrt'(0)``
  spread through the network and zeroes the NaN input gradients afterwards,
  which can wipe a whole step.
* Batching: new. ``batch`` path points go through the network together and one
  backward of their summed objectives gives each point's own gradient (the
  samples of a batch do not interact in eval mode); the tool runs the steps one
  by one. Parameter gradients are switched off while attributing.
* Models and devices: any network and any device (the tool is wired to EDSR on
  CUDA); inputs that need a multiple are padded by the caller's ``forward`` and
  the gradient flows back through the padding, so the attribution has the LR
  image's own size.
* DI: computed here (the tool has none), after the paper: ``DI = (1 - G) * 100``
  with ``G`` the Gini coefficient of the absolute attribution map summed over
  channels (:func:`diffusion_index`).
"""

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def check_settings(steps=50, sigma=1.2, kernel_size=9, batch=1):
    """Raise ValueError for path settings that cannot work (before any model runs)."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f'steps must be an integer >= 1 (got {steps!r}); the default is 50.')
    if not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f'batch must be an integer >= 1 (got {batch!r}).')
    if not sigma >= 0:
        raise ValueError(f'sigma must be >= 0 (got {sigma!r}); the default is 1.2.')
    if not (isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1):
        raise ValueError(f'kernel_size must be a positive odd integer (got {kernel_size!r}); the default is 9.')


def gaussian_kernel(size, sigma, epsilon=1e-5):
    """Isotropic Gaussian kernel, normalised to sum 1 (the LAM tool's ``isotropic_gaussian_kernel``).

    Args:
        size (int): Odd side length.
        sigma (float): Standard deviation in pixels; ``epsilon`` is added so that 0 gives a delta.
        epsilon (float): Added to sigma. Default: 1e-5.

    Returns:
        Tensor: (size, size), float64.
    """
    check_settings(kernel_size=size)
    ax = torch.arange(size, dtype=torch.float64) - size // 2
    kernel = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * (sigma + epsilon) ** 2))
    return kernel / kernel.sum()


def blur(x, kernel):
    """Filter every channel of ``x`` with ``kernel``, borders reflected (OpenCV's ``BORDER_REFLECT_101``).

    Args:
        x (Tensor): (B, C, H, W); H and W larger than half the kernel.
        kernel (Tensor): (k, k), k odd.

    Returns:
        Tensor: (B, C, H, W), ``x``'s dtype.
    """
    k = kernel.shape[-1]
    channels = x.shape[1]
    weight = kernel.to(x).expand(channels, 1, k, k)
    return F.conv2d(F.pad(x, [k // 2] * 4, mode='reflect'), weight, groups=channels)


def blur_path(image, sigma=1.2, steps=50, kernel_size=9):
    """The Gaussian-blur path from the blurred baseline (point 0) to the image (point ``steps``).

    Args:
        image (Tensor): (C, H, W).
        sigma (float): Blur of the baseline. Default: 1.2.
        steps (int): Path steps. Default: 50.
        kernel_size (int): Odd kernel side. Default: 9.

    Returns:
        Tensor: (steps + 1, C, H, W); point ``i`` is blurred with sigma ``sigma * (1 - i / steps)``.
    """
    check_settings(steps, sigma, kernel_size)
    height, width = image.shape[-2:]
    if min(height, width) <= kernel_size // 2:
        raise ValueError(
            f'The LR image ({height}x{width}) is too small for a {kernel_size}x{kernel_size} blur kernel; '
            'use a larger image or a smaller --kernel-size.'
        )
    sigmas = np.linspace(sigma, 0, steps + 1)
    return torch.cat([blur(image[None], gaussian_kernel(kernel_size, float(s))) for s in sigmas])


def gradient_magnitude(x):
    """Per-pixel gradient magnitude of an image, with derivative 0 where it is 0.

    Args:
        x (Tensor): (B, C, H, W).

    Returns:
        Tensor: (B, C, H - 1, W - 1); entry (y, x) is
        ``sqrt((x[y, x] - x[y+1, x])^2 + (x[y, x] - x[y, x+1])^2)``.
    """
    dy = x[..., :-1, :-1] - x[..., 1:, :-1]
    dx = x[..., :-1, :-1] - x[..., :-1, 1:]
    squared = dy**2 + dx**2
    positive = squared > 0
    # sqrt'(0) is infinite; take the zero subgradient there instead of letting NaN through.
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))), 0.0)


def window_gradient_objective(sr, window):
    """LAM's objective for each image of a batch: summed gradient magnitude inside the window.

    Args:
        sr (Tensor): (B, C, H, W) SR output.
        window (tuple[int, int, int]): (x, y, size): left, top and side in SR pixels.

    Returns:
        Tensor: (B,) objective of each image.
    """
    x, y, size = window
    crop = sr[..., y : y + size + 1, x : x + size + 1]  # the window plus the neighbours its differences need
    return gradient_magnitude(crop).sum(dim=(1, 2, 3))


def check_window(window, sr_size):
    """Raise ValueError unless ``window`` (x, y, size) lies inside an SR image of ``sr_size`` (H, W).

    The gradient magnitude needs each pixel's right and lower neighbour, so the
    window must end one pixel before the SR image's right and bottom edges.
    """
    x, y, size = window
    height, width = sr_size
    if size < 1 or x < 0 or y < 0 or x + size > width - 1 or y + size > height - 1:
        raise ValueError(
            f'Window x={x} y={y} size={size} is not inside the {width}x{height} SR image: it needs size >= 1, '
            f'0 <= x <= {width - 1 - size}, 0 <= y <= {height - 1 - size} (x, y are the left/top in SR pixels; the '
            'objective needs one pixel right of and below the window).'
        )


@contextmanager
def _frozen(net):
    """Switch off parameter gradients (they are not needed) and restore them afterwards."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclass
class Attribution:
    """Result of :func:`path_attribution`.

    Attributes:
        attribution (np.ndarray): (C, h, w) float64, signed per-channel attribution of the LR input.
        objective (float): Objective at the input (the path's last point).
        baseline_objective (float): Objective at the blurred baseline (the path's first point).
        path_objectives (np.ndarray): (steps + 1,) objective at every path point.
        sr (np.ndarray): (C, H, W) float32 SR output of the input, unclipped.
    """

    attribution: np.ndarray
    objective: float
    baseline_objective: float
    path_objectives: np.ndarray
    sr: np.ndarray


def path_attribution(forward, lr, window, sigma=1.2, steps=50, kernel_size=9, batch=1, net=None, progress=None):
    """Integrated gradients of the window objective along the blur path (see the module docstring).

    Args:
        forward (callable): (B, C, h, w) -> (B, C, H, W) SR output, differentiable
            (e.g. the network, or the network behind padding).
        lr (Tensor): (C, h, w) LR image on the network's device.
        window (tuple[int, int, int]): (x, y, size) in SR pixels.
        sigma (float): Blur of the baseline. Default: 1.2.
        steps (int): Riemann-sum steps. Default: 50.
        kernel_size (int): Odd blur kernel side. Default: 9.
        batch (int): Path points per forward/backward. Default: 1.
        net (nn.Module | None): Network whose parameter gradients are switched off meanwhile.
        progress (tqdm | None): Bar updated by the number of points done.

    Returns:
        Attribution: ``attribution.sum()`` approximates ``objective - baseline_objective``
        (completeness), with an error that shrinks as ``steps`` grows.
    """
    check_settings(steps, sigma, kernel_size, batch)
    path = blur_path(lr, sigma, steps, kernel_size)
    deltas = path[1:] - path[:-1]  # x_i - x_{i-1}, i = 1..steps
    total = torch.zeros(lr.shape, dtype=torch.float64, device=lr.device)
    objectives = torch.zeros(steps + 1, dtype=torch.float64)
    sr = None
    with _frozen(net) if net is not None else nullcontext():
        with torch.no_grad():  # the baseline: only its objective is needed
            out = forward(path[:1])
            check_window(window, out.shape[-2:])
            objectives[0] = window_gradient_objective(out, window)[0].double().cpu()
        for start in range(1, steps + 1, batch):
            stop = min(start + batch, steps + 1)
            points = path[start:stop].clone().requires_grad_(True)
            with torch.enable_grad():
                out = forward(points)
                values = window_gradient_objective(out, window)
                (grad,) = torch.autograd.grad(values.sum(), points)
            total += (grad.double() * deltas[start - 1 : stop - 1].double()).sum(dim=0)
            objectives[start:stop] = values.detach().double().cpu()
            if stop == steps + 1:
                sr = out[-1].detach().float().cpu().numpy()
            if progress is not None:
                progress.update(stop - start)
    return Attribution(
        attribution=total.cpu().numpy(),
        objective=float(objectives[-1]),
        baseline_objective=float(objectives[0]),
        path_objectives=objectives.numpy(),
        sr=sr,
    )


def gini(values):
    """Gini coefficient of non-negative values: ``sum_ij |v_i - v_j| / (2 n^2 mean(v))``.

    Args:
        values (np.ndarray): Any shape, non-negative, not all zero.

    Returns:
        float: 0 for equal values, ``1 - 1/n`` when one value holds everything.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = v.size
    if n == 0 or np.any(v < 0) or not np.isfinite(v).all():
        raise ValueError('gini needs finite, non-negative values.')
    total = v.sum()
    if total == 0:
        raise ValueError('gini of an all-zero map is undefined.')
    rank = np.arange(1, n + 1)
    # The sorted form of the mean absolute difference: sum_i (2i - n - 1) v_(i) / (n^2 mean).
    return float(np.sum((2 * rank - n - 1) * v) / (n * total))


def diffusion_index(attribution):
    """Diffusion index (DI) of an attribution map, after Gu & Dong (CVPR 2021).

    ``DI = (1 - G) * 100``, with ``G`` the Gini coefficient of the LAM map: the
    absolute value of the attribution summed over channels (before the square
    root and max-normalisation used for display, which do not change it or only
    change its contrast). DI is near 0 when a few LR pixels carry all the
    attribution (one pixel out of n: ``100 / n``) and 100 when every pixel
    carries the same; scaling the map does not change it.

    Args:
        attribution (np.ndarray): (C, h, w) signed attribution, or an (h, w) map.

    Returns:
        float: DI in [0, 100]; NaN when the map is all zero (the window does not depend on the input).
    """
    attribution = np.asarray(attribution, dtype=np.float64)
    lam_map = np.abs(attribution.sum(axis=0) if attribution.ndim == 3 else attribution)
    if not lam_map.any():
        return math.nan
    return (1.0 - gini(lam_map)) * 100.0
