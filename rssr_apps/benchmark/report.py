"""Benchmark results as CSV, Markdown and JSON files."""

import csv
import json
import os
from os import path as osp

from .cost import FLOP_NOTE
from .plot import plot_psnr_vs_flops
from .quality import METRICS


def _fmt(value, spec, scale=1.0):
    return '—' if value is None else format(value / scale, spec)


def markdown_table(result):
    """The summary as Markdown: a setup paragraph and one row per model."""
    setup, datasets = result['setup'], [n for n, v in result['datasets'].items() if isinstance(v, int)]
    batch, channels, height, width = setup['input_shape']
    s = setup['scale']
    lines = [
        f'Scale x{s}; {setup["device"]}.',
        f'Cost at input {batch}x{channels}x{height}x{width} (LR) -> {height * s}x{width * s} (SR); latency: median of '
        f'{setup["runs"]} forwards after {setup["warmup"]} warm-up; peak memory: {setup["memory"]}.',
        FLOP_NOTE,
        quality_text(setup)
        + (', '.join(f'{n} ({result["datasets"][n]} images)' for n in datasets) or 'no test set')
        + '. Quality columns need trained weights: '
        '"random init" rows are cost only'
        + (' (their PSNR/SSIM, when shown, are of untrained networks)' if setup['quality'] == 'all' else '')
        + '.',
        '',
    ]
    header = ['Model', 'Weights', 'Params (M)', 'GFLOPs', 'GMACs', 'Latency (ms)', 'Peak mem (MiB)']
    rs = _metrics(setup) != list(METRICS)
    for name in datasets:
        header += [f'{name} {m}' for m in _metrics(setup)] if rs else [f'{name} PSNR/SSIM RGB', f'{name} PSNR/SSIM Y']
    header.append('Notes')
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in result['models']:
        flops = _fmt(row.get('flops'), '.3f', 1e9)
        if row.get('flops_method') == 'analytic':
            flops += ' (analytic)'
        cells = [
            row['model'],
            row.get('weights', '—'),
            _fmt(row.get('params'), '.3f', 1e6),
            flops,
            _fmt(row.get('macs'), '.3f', 1e9),
            _fmt(row.get('latency_s'), '.1f', 1e-3),
            _fmt(row.get('peak_memory_bytes'), '.1f', 2**20),
        ]
        for name in datasets:
            if rs:
                cells += [_fmt(row.get(f'{name}/{m}'), '.4g') for m in _metrics(setup)]
                continue
            for channel in ('rgb', 'y'):
                psnr, ssim = row.get(f'{name}/psnr_{channel}'), row.get(f'{name}/ssim_{channel}')
                cells.append('—' if psnr is None else f'{psnr:.2f} / {ssim:.4f}')
        cells.append('; '.join(row['notes'] + row['errors']).replace('|', '/'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    for note in setup['notes']:
        lines.append(f'\nNote: {note}')
    return '\n'.join(lines) + '\n'


def _metrics(setup):
    """The quality columns of a run: BasicSR's RGB/Y PSNR and SSIM, or the option file's ``metrics``."""
    return list(setup.get('metrics') or METRICS)


def quality_text(setup):
    """How quality was measured, up to the list of test sets."""
    if _metrics(setup) == list(METRICS):
        return (
            'Quality: BasicSR calculate_psnr / calculate_ssim on 8-bit images, border crop = scale, RGB and Y '
            '(BT.601), mean over images, on '
        )
    return (
        f'Quality: {", ".join(_metrics(setup))} in model values of the {setup.get("radiometry") or "uint8"} '
        'radiometry (SAM in degrees, ERGAS with the scale, band PSNR/SSIM: mean over bands over the valid '
        'range), nodata masked, mean over the windows with valid pixels, on '
    )


def _write_csv(file, rows, fields):
    with open(file, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


REPORTS = ('per_image.csv', 'summary.csv', 'summary.md', 'psnr_vs_flops.png', 'result.json')


def write_reports(result, out_dir):
    """Write ``per_image.csv``, ``summary.csv``, ``summary.md``, ``psnr_vs_flops.png`` and ``result.json``."""
    os.makedirs(out_dir, exist_ok=True)
    metrics = _metrics(result['setup'])
    _write_csv(osp.join(out_dir, 'per_image.csv'), result['images'], ['dataset', 'model', 'weights', 'image', *metrics])
    datasets = [n for n, v in result['datasets'].items() if isinstance(v, int)]
    fields = ['model', 'arch', 'weights', 'params', 'flops', 'macs', 'flops_method', 'latency_s', 'peak_memory_bytes']
    fields += [f'{n}/{m}' for n in datasets for m in metrics]
    summary = [
        {**row, 'notes': '; '.join(row['notes']), 'errors': '; '.join(row['errors'])} for row in result['models']
    ]
    _write_csv(osp.join(out_dir, 'summary.csv'), summary, fields + ['notes', 'errors'])
    with open(osp.join(out_dir, 'summary.md'), 'w') as f:
        f.write(markdown_table(result))
    plot_psnr_vs_flops(result, osp.join(out_dir, 'psnr_vs_flops.png'))
    with open(osp.join(out_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return out_dir
