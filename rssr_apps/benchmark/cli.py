"""Run a benchmark option file (``rssr-bench`` / ``scripts/benchmark.py``)."""

import argparse
import gc
import platform
import sys
from os import path as osp

import numpy as np
import torch

import rssr_patches
from rssr_utils.guards import check_apart, check_replace, positive_int
from rssr_utils.options import OptionError
from rssr_utils.options import load_options as read_option_file
from rssr_utils.radiometry import Radiometry

from .cost import MEMORY_METHODS, measure_cost
from .models import build_benchmark_model, model_spec
from .quality import METRICS, evaluate, prepare_dataset, rs_metrics
from .report import REPORTS, markdown_table, write_reports


def _error_text(exc):
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'[:300]


def _cost_defaults(cost_opt):
    cost = {'input_size': [48, 48], 'batch_size': 1, 'warmup': 1, 'runs': 3, 'memory': True, 'channels': 3}
    cost.update(cost_opt or {})
    if isinstance(cost['input_size'], int):
        cost['input_size'] = [cost['input_size']] * 2
    return cost


def resolve_device(name):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('device: cuda was asked for but torch sees no CUDA device; use --device cpu.')
    return device


def run_benchmark(opt, log=print):
    """Run the benchmark described by ``opt`` (a loaded option file).

    Returns:
        dict: ``models`` (one summary dict per model), ``images`` (per-image
        rows), ``datasets`` (name -> number of images or skip note) and
        ``setup`` (what was measured how).
    """
    from tqdm import tqdm

    scale = opt['scale']
    device = resolve_device(opt.get('device', 'cpu'))
    cost_opt = _cost_defaults(opt.get('cost'))
    quality = opt.get('quality', 'trained')
    if quality not in ('trained', 'all', 'none'):
        raise ValueError(f'quality: {quality!r}; use trained, all or none.')
    rssr_patches.import_registries()
    notes = []
    radiometry, metrics = opt.get('radiometry'), rs_metrics(opt)
    names = list(metrics) if metrics else list(METRICS)

    datasets, dataset_info = {}, {}
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset, note = prepare_dataset(name, dataset_opt, scale, radiometry)
        if dataset is None:
            notes.append(note)
            dataset_info[name] = note
        else:
            datasets[name] = dataset
            dataset_info[name] = len(dataset)

    selected = opt.get('only')
    entries = [e for e in opt.get('models') or [] if not selected or e.get('name') in selected]
    models, images = [], []
    total = len(entries) * (1 + sum(len(d) for d in datasets.values()))
    with tqdm(total=total, desc=f'benchmark x{scale}', unit='step', file=sys.stderr) as bar:
        for entry in entries:
            row = {'model': entry.get('name') or entry.get('opt') or '?', 'notes': [], 'errors': []}
            models.append(row)
            bar.set_postfix_str(row['model'])
            try:
                spec = model_spec(entry)
                row.update(model=spec['name'], arch=spec['network_g']['type'])
                net, row['weights'], note = build_benchmark_model(spec, device)
                if note:
                    row['notes'].append(note)
            except Exception as exc:
                row['errors'].append(f'build: {_error_text(exc)}')
                bar.update(1 + sum(len(d) for d in datasets.values()))
                continue
            try:
                row.update(measure_cost(net, spec, scale, device, cost_opt))
            except Exception as exc:
                row['errors'].append(f'cost: {_error_text(exc)}')
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
            bar.update(1)
            for name, dataset in datasets.items():
                if quality == 'none' or (quality == 'trained' and row['weights'] == 'random init'):
                    bar.update(len(dataset))
                    continue
                try:
                    per_image = evaluate(
                        net, dataset, scale, device, spec.get('pad_multiple'), bar, metrics, radiometry
                    )
                except Exception as exc:
                    row['errors'].append(f'{name}: {_error_text(exc)}')
                    continue
                for item in per_image:
                    images.append({'dataset': name, 'model': row['model'], 'weights': row['weights'], **item})
                for metric in names:  # over the windows it could score (RS metrics skip empty ones)
                    values = [item[metric] for item in per_image if metric in item]
                    if values:
                        row[f'{name}/{metric}'] = float(np.mean(values))
            del net
            gc.collect()
            if row['errors']:
                log(f'{row["model"]}: ' + '; '.join(row['errors']))

    setup = {
        'scale': scale,
        'device': _device_text(device),
        'quality': quality,
        'input_shape': [cost_opt['batch_size'], cost_opt['channels'], *cost_opt['input_size']],
        'metrics': names,
        'radiometry': None if radiometry is None else Radiometry.resolve(radiometry).name or 'explicit',
        'warmup': cost_opt['warmup'],
        'runs': cost_opt['runs'],
        'memory': MEMORY_METHODS[device.type] if cost_opt['memory'] else 'not measured',
        'notes': notes,
    }
    return {'models': models, 'images': images, 'datasets': dataset_info, 'setup': setup}


def _device_text(device):
    if device.type == 'cuda':
        return f'CUDA {torch.cuda.get_device_name(device)}, torch {torch.__version__}'
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    return f'CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}'


def load_options(opt_path, args=None):
    opt = read_option_file(opt_path)
    if args is not None:
        for key in ('device', 'quality'):
            if getattr(args, key):
                opt[key] = getattr(args, key)
        opt['cost'] = _cost_defaults(opt.get('cost'))
        if args.runs:
            opt['cost']['runs'] = args.runs
        if args.input_size:
            opt['cost']['input_size'] = args.input_size
        if args.no_memory:
            opt['cost']['memory'] = False
        if args.models:
            opt['only'] = args.models.split(',')
    return opt


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description='Benchmark SR models: PSNR/SSIM, parameters, FLOPs, latency, '
        'memory -> CSV, Markdown table and PSNR-vs-FLOPs plot.'
    )
    parser.add_argument('-opt', required=True, help='benchmark option file, e.g. options/benchmark_x4.yml')
    parser.add_argument('--out', help='output folder (default: results/<name>)')
    parser.add_argument('--device', help='cpu | cuda | auto (overrides the option file)')
    parser.add_argument('--quality', choices=('trained', 'all', 'none'), help='which models get PSNR/SSIM')
    parser.add_argument('--runs', type=positive_int, help='timed forwards per model')
    parser.add_argument(
        '--input-size', type=positive_int, nargs=2, metavar=('H', 'W'), help='LR size of the cost input'
    )
    parser.add_argument('--overwrite', action='store_true', help='replace the reports of an earlier run in --out')
    parser.add_argument('--models', help='comma-separated model names to run (default: all)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory process')
    parser.add_argument('--data-only', action='store_true', help='write the generated test sets and stop')
    args = parser.parse_args(argv)
    if not osp.isfile(args.opt):
        parser.error(f'option file {args.opt} not found')
    try:
        opt = load_options(args.opt, args)
    except OptionError as error:
        sys.exit(f'rssr-bench: {error}')
    if args.data_only:
        rssr_patches.import_registries()
        for name, dataset_opt in (opt.get('datasets') or {}).items():
            dataset, note = prepare_dataset(name, dataset_opt, opt['scale'])
            print(note or f'{name}: {len(dataset)} images')
        return None
    out_dir = args.out or osp.join('results', opt.get('name', osp.splitext(osp.basename(args.opt))[0]))
    datasets = (opt.get('datasets') or {}).values()
    inputs = [args.opt] + [d.get(k) for d in datasets if isinstance(d, dict) for k in ('dataroot_gt', 'dataroot_lq')]
    inputs += [m.get('pretrain_network_g') for m in opt.get('models') or [] if isinstance(m, dict)]
    try:
        check_apart(out_dir, inputs, '--out')
        check_replace([osp.join(out_dir, name) for name in REPORTS], args.overwrite)
    except (ValueError, FileExistsError) as error:
        sys.exit(f'rssr-bench: {error}')
    result = run_benchmark(opt)
    write_reports(result, out_dir)
    print(markdown_table(result))
    print(f'Wrote per_image.csv, summary.csv, summary.md, psnr_vs_flops.png to {out_dir}')
    return result


if __name__ == '__main__':
    main()
