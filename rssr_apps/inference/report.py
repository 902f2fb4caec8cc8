"""``rssr-infer --report``: how well a super-resolved scene agrees with its own LR input (no HR needed).

The SR output, degraded back to the LR grid with the sensor's MTF
(:func:`rssr_metrics.lr_consistency`, opensr-test's consistency check), is
compared with the LR input on a grid of at most ``MAX_WINDOWS`` LR windows of
``WINDOW`` pixels spread over the scene (both read by windows, so a whole
scene is never held): mean absolute reflectance error, spectral angle and the
spatial shift found by phase correlation. Windows with under half their pixels
valid are left out; figures are means over windows weighted by valid pixels.
The report is printed and written beside the output as ``<output>.report.json``.
"""

import json
from os import path as osp

import numpy as np

from rssr_utils.radiometry import RadiometryError, fill_invalid

from .scene import ModelStrips, SceneSource

WINDOW = 128
MAX_WINDOWS = 16


def report_windows(height, width, window=WINDOW, max_windows=MAX_WINDOWS):
    """(top, left, side) of at most ``max_windows`` LR windows on an even grid over the scene."""
    side = min(window, height, width)
    per_axis = max(1, int(np.sqrt(max_windows)))
    tops = np.unique(np.linspace(0, height - side, per_axis).round().astype(int))
    lefts = np.unique(np.linspace(0, width - side, per_axis).round().astype(int))
    return [(int(t), int(x), side) for t in tops for x in lefts]


def consistency(src, dst, scale, radiometry, bands=None, window=WINDOW, max_windows=MAX_WINDOWS):
    """LR consistency of ``dst`` (the SR scene) with ``src`` (its LR input), as a JSON-able dict."""
    from rssr_metrics import lr_consistency

    lr_source, sr_source = SceneSource(src, bands), SceneSource(dst)
    try:
        n = len(lr_source.bands)
        try:
            mtf = radiometry.band_mtf(n)
        except RadiometryError:
            mtf = None  # no sensor MTF declared: lr_consistency's default blur
        lr_scene, sr_scene = ModelStrips(lr_source, radiometry), ModelStrips(sr_source, radiometry)
        sums, weight, used = {}, 0, 0
        for top, left, side in report_windows(lr_source.height, lr_source.width, window, max_windows):
            lr_stored = lr_source.read(top, top + side)[:, :, left : left + side]
            mask = lr_scene.valid(lr_stored)
            if mask.mean() < 0.5:
                continue
            sr_stored = sr_source.read(top * scale, (top + side) * scale)[:, :, left * scale : (left + side) * scale]
            # Nodata filled as the network saw it, so the blur of the degradation does not spread it.
            lr = fill_invalid(radiometry.to_model(lr_stored.transpose(1, 2, 0)), mask)
            sr = fill_invalid(radiometry.to_model(sr_stored.transpose(1, 2, 0)), sr_scene.valid(sr_stored))
            figures = lr_consistency(sr, lr, scale, mtf=mtf, mask=mask)
            valid = int(mask.sum())
            for key, value in figures.items():
                sums[key] = sums.get(key, 0) + valid * np.asarray(value, np.float64)
            weight, used = weight + valid, used + 1
    finally:
        lr_source.close()
        sr_source.close()
    return {
        'input': src,
        'output': dst,
        'scale': scale,
        'windows': used,
        'window_size': window,
        'valid_lr_pixels': weight,
        'radiometry': radiometry.name or 'explicit',
        'mtf': mtf,
        'metrics': {k: (v / weight).tolist() for k, v in sums.items()} if weight else {},
    }


def report_text(report):
    """One line per report: the figures, or why there are none."""
    name = osp.basename(report['output'])
    if not report['windows']:
        return f'{name}: no LR window with at least half its pixels valid; no consistency figures.'
    figures = ', '.join(
        f'{k} {v:.4g}' if np.ndim(v) == 0 else f'{k} {[round(x, 4) for x in np.ravel(v)]}'
        for k, v in report['metrics'].items()
    )
    return (
        f'{name}: LR consistency over {report["windows"]} windows of {report["window_size"]} LR px '
        f'({report["valid_lr_pixels"]} valid): {figures}'
    )


def write_report(src, dst, scale, radiometry, bands=None):
    """Compute the report of one output, write ``<dst>.report.json`` beside it and return its text."""
    report = consistency(src, dst, scale, radiometry, bands)
    with open(osp.splitext(dst)[0] + '.report.json', 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    return report_text(report)
