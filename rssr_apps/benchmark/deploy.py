"""Export every model of a benchmark option file and compare onnxruntime with PyTorch (``scripts/bench_export.py``).

For each model: whether ``rssr-export`` works (safetensors + ONNX), the time
it takes, the max abs difference between onnxruntime and PyTorch at three LR
sizes from the one export (non-square, sides that are not multiples of the
windows), and the CPU latency of both at each ``--latency-sizes`` size and
``--threads`` count (PyTorch and onnxruntime given the same threads), measured
in the same process, alternating PyTorch and onnxruntime runs and keeping each
side's median; ``ort / torch`` is their ratio. Rows are appended to ``--out`` (JSON) as they finish, and a Markdown
table is printed at the end.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback
from os import path as osp

import torch

from rssr_apps.export import export_model
from rssr_apps.onnx_export import onnx_session
from rssr_utils.options import load_options
from rssr_utils.weights import build_model

from .models import model_spec

SIZES = [(37, 53), (48, 48), (64, 41)]


def _latency(net, session, size, runs):
    """Median seconds of ``runs`` alternating PyTorch and onnxruntime forwards of a (1, 3, *size) input."""
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    feed = {session.get_inputs()[0].name: x.numpy()}
    times = {'torch': [], 'onnxruntime': []}
    with torch.no_grad():
        net(x), session.run(None, feed)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            net(x)
            times['torch'].append(time.perf_counter() - start)
            start = time.perf_counter()
            session.run(None, feed)
            times['onnxruntime'].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def latencies(net, onnx_path, sizes, threads, runs):
    """``{'HxW/Nt': {'torch': s, 'onnxruntime': s}}`` for each size and thread count (both sides alike)."""
    out = {}
    previous = torch.get_num_threads()
    try:
        for count in threads:
            torch.set_num_threads(count)
            session = onnx_session(onnx_path, threads=count)
            for h, w in sizes:
                out[f'{h}x{w}/{count}t'] = _latency(net, session, (h, w), runs)
    finally:
        torch.set_num_threads(previous)
    return out


def bench_model(entry, work_dir, sizes=SIZES, latency_sizes=((48, 48),), threads=(1,), runs=3):
    """One row: export status and time, errors at ``sizes``, latencies at ``latency_sizes`` x ``threads``."""
    from rssr_apps.onnx_export import verify_onnx

    spec = model_spec(entry)
    row = {'model': spec['name'], 'arch': spec['network_g']['type'], 'export': 'no'}
    weights = (
        spec['pretrain_network_g'] if spec['pretrain_network_g'] and osp.isfile(spec['pretrain_network_g']) else None
    )
    row['weights'] = 'trained' if weights else 'initial'
    out = osp.join(work_dir, spec['name'])
    try:
        start = time.perf_counter()
        result = export_model(
            spec['network_g'],
            out,
            weights,
            spec['param_key_g'],
            spec['official'],
            name=spec['name'],
            pad_multiple=spec['pad_multiple'],
            verify=False,
            log=lambda *_: None,
        )
        row['export_s'] = time.perf_counter() - start
        row['onnx_mib'] = os.path.getsize(result['onnx']) / 2**20
        net = build_model(None, result['safetensors'])
        row['max_abs_error'] = dict(zip([f'{h}x{w}' for h, w in sizes], verify_onnx(net, result['onnx'], sizes)))
        row['latency_s'] = latencies(net, result['onnx'], latency_sizes, threads, runs)
        row['export'] = 'yes'
    except Exception as error:  # a row per model, whatever fails
        text = str(error)
        if '## Exception summary' in text:  # the exporters' own message: keep its summary line
            text = text.split('## Exception summary', 1)[1]
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        row['error'] = f'{type(error).__name__}: {lines[0][:300] if lines else ""}'
        row['traceback'] = traceback.format_exc(limit=-3)
    return row


def markdown(rows, sizes=SIZES):
    """A Markdown table: export, errors at ``sizes``, then per latency case torch s, onnxruntime s, ratio."""
    size_cols = [f'{h}x{w}' for h, w in sizes]
    cases = next((list(r['latency_s']) for r in rows if r.get('latency_s')), [])
    head = ['model', 'export', 'export s', *(f'max abs err {s}' for s in size_cols)]
    head += [f'{c}: torch s / ort s / ratio' for c in cases]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        if r['export'] != 'yes':
            cells = [r['model'], 'no: ' + r.get('error', '?')[:120], *([''] * (len(head) - 2))]
        else:
            cells = [r['model'], 'yes', f'{r["export_s"]:.0f}']
            cells += [f'{r["max_abs_error"][s]:.1e}' for s in size_cols]
            for case in cases:
                lat = r['latency_s'][case]
                cells.append(f'{lat["torch"]:.3f} / {lat["onnxruntime"]:.3f} / {lat["onnxruntime"] / lat["torch"]:.2f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _sizes(text):
    """'64x64,256x256' -> [(64, 64), (256, 256)]."""
    try:
        return [tuple(int(v) for v in item.split('x')) for item in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: sizes are HxW, comma-separated (e.g. 64x64,256x256)') from None


def main(argv=None):
    from rssr_utils.guards import positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default='options/benchmark_x4.yml', help='benchmark option file (its models)')
    parser.add_argument('--models', help='comma-separated model names (default: all)')
    parser.add_argument('--runs', type=positive_int, default=3, help='timed forwards per side')
    parser.add_argument('--out', default='results/bench_export.json', help='JSON rows, appended as they finish')
    parser.add_argument(
        '--threads',
        type=lambda text: [positive_int(t) for t in text.split(',')],
        default=[1],
        help='comma-separated CPU thread counts, each given to PyTorch and onnxruntime',
    )
    parser.add_argument('--latency-sizes', type=_sizes, default=[(48, 48)], help='LR sizes timed, e.g. 64x64,256x256')
    args = parser.parse_args(argv)
    threads = args.threads
    opt = load_options(args.opt)
    names = args.models.split(',') if args.models else None
    entries = [e for e in opt['models'] if not names or e.get('name') in names]
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    rows = []
    import onnxruntime

    print(f'torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; threads {threads}; sizes {SIZES}')
    with tempfile.TemporaryDirectory() as work_dir:
        for entry in entries:
            row = bench_model(entry, work_dir, latency_sizes=args.latency_sizes, threads=threads, runs=args.runs)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != 'traceback'}), flush=True)
            with open(args.out, 'w') as f:
                json.dump(rows, f, indent=1)
    print(markdown(rows))
    return rows
