"""``rssr-infer --report``: how well a super-resolved scene agrees with its own LR input (no HR needed).

The SR output, degraded back to the LR grid with the sensor's MTF (the
radiometry's per-band MTF; MATLAB bicubic when it declares none) by
:func:`rssr_metrics.consistency.lr_consistency` (opensr-test's check), is
compared with the LR input on a grid of at most ``MAX_WINDOWS`` LR windows of
``WINDOW`` pixels spread over the scene (both read by windows, so a whole
scene is never held, and no pixel is counted twice): mean absolute
reflectance error, spectral angle and the spatial shift found by phase
correlation. Windows with under half their pixels valid are left out, as are
LR pixels within the degradation kernel's reach of nodata or of a window edge
inside the scene; figures are pixel-weighted means over the windows
(:func:`rssr_metrics.consistency.combine_reports`).
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
    """(top, left, side) of at most ``max_windows`` non-overlapping LR windows, evenly picked from the grid."""
    side = min(window, height, width)
    grid = [(t, x) for t in range(0, height - side + 1, side) for x in range(0, width - side + 1, side)]
    picked = np.unique(np.linspace(0, len(grid) - 1, min(max_windows, len(grid))).round().astype(int))
    return [(grid[i][0], grid[i][1], side) for i in picked]


def consistency(src, dst, scale, radiometry, bands=None, window=WINDOW, max_windows=MAX_WINDOWS):
    """LR consistency of ``dst`` (the SR scene) with ``src`` (its LR input), as a JSON-able dict."""
    from rssr_metrics.consistency import NoValidPixelsError, combine_reports, lr_consistency

    lr_source, sr_source = SceneSource(src, bands), SceneSource(dst)
    try:
        n = len(lr_source.bands)
        try:
            mtf = radiometry.band_mtf(n)
        except RadiometryError:
            mtf = None  # no sensor MTF declared: degraded by MATLAB bicubic, as bicubic-trained models' LR
        lr_scene, sr_scene = ModelStrips(lr_source, radiometry), ModelStrips(sr_source, radiometry)
        reports = []
        windows = report_windows(lr_source.height, lr_source.width, window, max_windows)
        whole = len(windows) == 1 and windows[0][2] == lr_source.height == lr_source.width
        for top, left, side in windows:
            lr_stored = lr_source.read(top, top + side)[:, :, left : left + side]
            mask = lr_scene.valid(lr_stored)
            if mask.mean() < 0.5:
                continue
            sr_stored = sr_source.read(top * scale, (top + side) * scale)[:, :, left * scale : (left + side) * scale]
            # Nodata filled as the network saw it, so the blur of the degradation does not spread it.
            lr = fill_invalid(radiometry.to_model(lr_stored.transpose(1, 2, 0)), mask)
            sr = fill_invalid(radiometry.to_model(sr_stored.transpose(1, 2, 0)), sr_scene.valid(sr_stored))
            try:  # a window's edges inside the scene are not the scene's: border None leaves the kernel's reach
                reports.append(lr_consistency(sr, lr, scale, mtf=mtf, mask=mask, border=0 if whole else None))
            except NoValidPixelsError:  # every valid pixel within the kernel's reach of nodata
                continue
    finally:
        lr_source.close()
        sr_source.close()
    metrics = combine_reports(reports) if reports else {}
    return {
        'input': src,
        'output': dst,
        'scale': scale,
        'windows': len(reports),
        'window_size': windows[0][2],
        'valid_lr_pixels': metrics.pop('pixels', 0),  # compared: valid, away from nodata and window edges
        'radiometry': radiometry.name or 'explicit',
        'mtf': mtf,
        'metrics': metrics,
    }


def report_text(report):
    """One line per report: the figures, or why there are none."""
    name = osp.basename(report['output'])
    if not report['windows']:
        return f'{name}: no LR window with at least half its pixels valid; no consistency figures.'
    figures = ', '.join(
        f'{k} {v:.4g}' if np.ndim(v) == 0 else f'{k} {[round(float(x), 4) for x in np.ravel(v)]}'
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
