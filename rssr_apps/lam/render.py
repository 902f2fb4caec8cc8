"""Pictures of a local attribution map: saliency, blend over the LR, window on the SR output, comparison figure.

The saliency rendering follows the LAM tool (``lam/utils.py``: ``grad_abs_norm``,
``vis_saliency``; ``main.py``): the attribution summed over channels, absolute,
square-rooted and divided by its maximum, coloured with matplotlib's ``seismic``
map at ``0.5 + 0.5 * value`` (white for none, dark red for the most), enlarged
``scale`` times by pixel repetition, and blended as ``(1 - alpha) * saliency +
alpha * LR`` with ``alpha = 0.3`` over the LR image enlarged bicubically
(OpenCV's cubic here, PIL's in the tool). The window is drawn in red, 2 pixels
wide, on the SR output (the tool draws it on the HR image).

Images are RGB uint8 (H, W, 3) arrays.
"""

import numpy as np


def saliency_map(attribution):
    """Display map of an attribution: ``sqrt(|sum_c A|)`` divided by its maximum.

    Args:
        attribution (np.ndarray): (C, h, w).

    Returns:
        np.ndarray: (h, w) float in [0, 1] (all zero for an all-zero attribution).
    """
    lam_map = np.sqrt(np.abs(np.asarray(attribution, dtype=np.float64).sum(axis=0)))
    peak = lam_map.max()
    return lam_map / peak if peak > 0 else lam_map


def to_uint8(img):
    """(C, H, W) or (H, W, C) float image in [0, 1] (clipped) -> (H, W, C) uint8; C-first is detected by C <= 4."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] <= 4 and img.shape[-1] > 4:
        img = img.transpose(1, 2, 0)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def saliency_image(lam_map, scale):
    """Colour a (h, w) map in [0, 1] with ``seismic`` and enlarge it ``scale`` times (nearest).

    Returns:
        np.ndarray: (h * scale, w * scale, 3) uint8.
    """
    from matplotlib import colormaps

    colored = colormaps['seismic'](np.asarray(lam_map) * 0.5 + 0.5)[..., :3]
    colored = np.round(colored * 255.0).astype(np.uint8)
    return np.repeat(np.repeat(colored, scale, axis=0), scale, axis=1)


def blend(saliency, lr_rgb, alpha=0.3):
    """``(1 - alpha) * saliency + alpha * LR`` with the LR image enlarged bicubically to the saliency's size.

    Args:
        saliency (np.ndarray): (H, W, 3) uint8.
        lr_rgb (np.ndarray): (h, w, 3) uint8.
        alpha (float): Weight of the LR image. Default: 0.3.
    """
    import cv2

    height, width = saliency.shape[:2]
    lr_big = cv2.resize(lr_rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    mixed = saliency.astype(np.float64) * (1.0 - alpha) + lr_big.astype(np.float64) * alpha
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def draw_window(img, window, color=(255, 0, 0), thickness=2):
    """A copy of ``img`` (H, W, 3) uint8 with the window (x, y, size) outlined."""
    import cv2

    x, y, size = window
    out = np.ascontiguousarray(img).copy()
    cv2.rectangle(out, (x, y), (x + size, y + size), color, thickness)
    return out


def comparison_figure(path, rows, dpi=80):
    """Save one row per model: SR output with the window, LAM saliency, blend over the LR; DI in the titles.

    Args:
        path (str): PNG file (written as given; the caller makes it atomic).
        rows (list[dict]): ``name``, ``di`` (float), ``window_image``, ``saliency``, ``blend`` (RGB uint8).
        dpi (int): Resolution. Default: 80 (a three-model figure of 480-pixel images stays under 500 KB).
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    side = 2.3  # inches per panel
    fig, axes = plt.subplots(len(rows), 3, figsize=(3 * side, len(rows) * (side + 0.3)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        di = 'n/a' if row['di'] != row['di'] else f'{row["di"]:.2f}'
        panels = (
            (row['window_image'], f'{row["name"]}: SR, window'),
            (row['saliency'], f'LAM (DI {di})'),
            (row['blend'], 'LAM over LR'),
        )
        for ax, (img, title) in zip(ax_row, panels):
            ax.imshow(img, interpolation='nearest')
            ax.set_title(title, fontsize=9)
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format='png')
    plt.close(fig)
