"""Compare SR models on quality and cost: one option file in, one CSV, one table and one plot out.

``python scripts/benchmark.py -opt options/benchmark_x4.yml`` builds every model
of the option file by its registered ``type`` (rssr's TSFNet and FAT, BasicSR's
EDSR, RCAN, SwinIR, MSRResNet, RRDBNet, ..., and the MATLAB-bicubic baseline)
and measures

* quality, with BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on 8-bit
  images, border crop = scale, on RGB and on Y (BT.601), on every test set of
  the option file (any BasicSR dataset block: folders or LMDB), averaged over
  images like BasicSR's validation;
* cost, on a random input of a stated size: parameters; FLOPs counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (plus formulas for the FFTs and
  CPU attention kernels it does not know) and MACs = FLOPs / 2; latency (median
  of N timed forwards after warm-up); peak memory of one forward.

A model without weights is measured for cost and marked ``random init`` in the
table; its quality columns stay empty unless ``quality: all`` asks for them
(they are then still marked). A model that fails (unknown type, wrong output
size, out of memory) gets its error in its row and the run goes on.

Option file keys (see ``options/benchmark_x4.yml``)::

    name: benchmark_x4
    scale: 4
    device: cpu                 # cpu | cuda | auto
    quality: trained            # trained | all | none
    cost: {input_size: [48, 48], batch_size: 1, warmup: 1, runs: 3, memory: true}
    datasets:                   # name -> BasicSR dataset block, plus:
      name:
        optional: true          # skip (with a note) when a data folder is absent
        generate: skimage       # write a real-image set from scikit-image's data first
        hr_size: 192            #   (its HR crop size)
        make_lq: bicubic        # make missing LR images from the HR ones (MATLAB bicubic)
    models:
      - name: EDSR
        opt: options/test_edsr_x4.yml   # take network_g / path / model_type from a test option file
      - name: FAT
        network_g: {type: FAT, upscale: 4}
        pretrain_network_g: ~   # checkpoint; BasicSR ``params``/``params_ema`` or bare
        param_key_g: params
        official: false         # true: an authors' checkpoint, converted by rssr_arch
        pad_multiple: ~         # reflect-pad inputs to a multiple (SwinIRModel's window padding)

Relative paths are relative to the working directory, as in BasicSR.
"""

import argparse
import copy
import csv
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from os import path as osp

import rssr_compat  # noqa: F401  (before basicsr)

import numpy as np
import torch
import yaml
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from basicsr.utils.registry import ARCH_REGISTRY
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METRICS = ('psnr_rgb', 'ssim_rgb', 'psnr_y', 'ssim_y')
SKIMAGE_IMAGES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'grass', 'gravel', 'brick')
MEMORY_METHODS = {
    'cpu': 'peak RSS growth (VmHWM) during one forward, in a fresh process per model whose large allocations '
    'are returned to the OS on free (MALLOC_MMAP_THRESHOLD_), over weights and input already resident',
    'cuda': 'torch.cuda.max_memory_allocated during one forward, over weights and input already allocated',
}
FLOP_NOTE = (
    'FLOPs: torch.utils.flop_counter.FlopCounterMode (2 per multiply-add for conv, matmul and attention) '
    'plus FFTs at 5 N log2 N per complex N-point transform (half for real input or output) and CPU '
    'attention kernels; element-wise ops (activations, additions, softmax, interpolation) are not '
    'counted. MACs = FLOPs / 2. Bicubic: analytic (separable 4-tap kernel).'
)


# ----------------------------------------------------------------------------------------------- FLOPs
def _fft_flops(signal_shape, dims, per_point):
    points = math.prod(signal_shape[d] for d in dims)
    batch = math.prod(signal_shape) // points
    return int(round(per_point * batch * points * math.log2(points))) if points > 1 else 0


def _fft_r2c_flop(x_shape, dim, normalization, onesided, *args, out_shape=None, **kwargs):
    return _fft_flops(x_shape, dim, 2.5)


def _fft_c2r_flop(x_shape, dim, normalization, last_dim_size, *args, out_shape=None, **kwargs):
    return _fft_flops(out_shape, dim, 2.5)


def _fft_c2c_flop(x_shape, dim, normalization, forward, *args, out_shape=None, **kwargs):
    return _fft_flops(x_shape, dim, 5.0)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Ops that FlopCounterMode (torch 2.x) counts as zero: FFTs and the fused CPU attention kernel.
EXTRA_FLOP_FORMULAS = {
    aten._fft_r2c: _fft_r2c_flop,
    aten._fft_c2r: _fft_c2r_flop,
    aten._fft_c2c: _fft_c2c_flop,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
}


def count_flops(net, x):
    """FLOPs of ``net(x)`` (one forward, no grad) and the count per aten op.

    Returns:
        tuple[int, dict[str, int]]: Total FLOPs and FLOPs by op name.
    """
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        net(x)
    by_op = {str(op): n for op, n in counter.get_flop_counts().get('Global', {}).items()}
    return counter.get_total_flops(), by_op


def count_parameters(net):
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------------------------- models
def import_registries():
    """Register rssr's archs and datasets; return a note when a package failed to import."""
    notes = []
    for package in ('rssr_arch', 'rssr_data'):
        try:
            __import__(package)
        except Exception as exc:  # a half-written module must not stop BasicSR's own models
            notes.append(f'import {package} failed ({type(exc).__name__}: {exc})')
    return '; '.join(notes)


def model_spec(entry):
    """Normalise a ``models`` entry: merge the referenced test option file, then the entry's own keys."""
    spec = {
        'name': None,
        'network_g': None,
        'pretrain_network_g': None,
        'param_key_g': 'params',
        'strict_load_g': True,
        'official': False,
        'pad_multiple': None,
        'opt': entry.get('opt'),
    }
    if entry.get('opt'):
        if not osp.isfile(entry['opt']):
            raise FileNotFoundError(
                f'Test option file {entry["opt"]} (model {entry.get("name")}) not found; '
                'fix `opt:` or give `network_g:` inline.'
            )
        with open(entry['opt']) as f:
            test_opt = yaml.safe_load(f)
        spec['network_g'] = test_opt['network_g']
        spec['name'] = test_opt.get('name')
        for key in ('pretrain_network_g', 'param_key_g', 'strict_load_g'):
            if key in (test_opt.get('path') or {}):
                spec[key] = test_opt['path'][key]
        if test_opt.get('model_type') == 'SwinIRModel':
            spec['pad_multiple'] = test_opt['network_g']['window_size']
    spec.update({k: v for k, v in entry.items() if k != 'opt'})
    if not spec['network_g'] or 'type' not in spec['network_g']:
        raise ValueError(f'Model entry {entry} needs `network_g: {{type: ...}}` or `opt: <test option file>`.')
    spec['name'] = spec['name'] or spec['network_g']['type']
    return spec


def build_network(spec, device='cpu', load=True):
    """Build ``spec['network_g']`` from ARCH_REGISTRY and load its checkpoint.

    Returns:
        tuple[nn.Module, str, str]: The network in eval mode, its weights status
        (``trained``, ``random init`` or ``parameter-free``) and a note.
    """
    opt = dict(spec['network_g'])
    arch_type = opt.pop('type')
    torch.manual_seed(0)  # random-init rows are reproducible
    net = ARCH_REGISTRY.get(arch_type)(**opt)
    status, note = ('parameter-free' if count_parameters(net) == 0 else 'random init'), ''
    checkpoint = spec.get('pretrain_network_g')
    if checkpoint and load:
        if osp.isfile(checkpoint):
            net.load_state_dict(_checkpoint_state(spec, arch_type, checkpoint), strict=spec['strict_load_g'])
            status = 'trained'
        else:
            note = f'no checkpoint at {checkpoint}: cost only'
    return net.to(device).eval(), status, note


def _checkpoint_state(spec, arch_type, checkpoint):
    from rssr_arch import convert_official_state_dict, unwrap_checkpoint

    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    if spec['official']:
        return convert_official_state_dict(arch_type, state)
    key = spec['param_key_g']
    if isinstance(state, dict) and key not in state and 'params' in state:
        key = 'params'  # BasicSR's load_network falls back the same way
    return unwrap_checkpoint(state[key] if isinstance(state, dict) and key in state else state)


def super_resolve(net, lq, scale, pad_multiple=None):
    """``net(lq)`` checked for size; with ``pad_multiple`` reflect-padded and cropped like SwinIRModel.test."""
    height, width = lq.shape[-2:]
    if pad_multiple:
        lq = F.pad(lq, (0, -width % pad_multiple, 0, -height % pad_multiple), 'reflect')
    out = net(lq)
    if not torch.is_tensor(out):
        raise TypeError(f'{type(net).__name__} returned {type(out).__name__} in eval mode; expected one tensor.')
    expected = (lq.shape[-2] * scale, lq.shape[-1] * scale)
    if tuple(out.shape[-2:]) != expected or out.shape[:2] != lq.shape[:2]:
        raise ValueError(
            f'output {tuple(out.shape)} for input {tuple(lq.shape)}; expected x{scale} '
            f'{(*lq.shape[:2], *expected)} (does this arch support upscale {scale}?)'
        )
    return out[..., : height * scale, : width * scale]


# ----------------------------------------------------------------------------------------------- cost
def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure_latency(net, x, scale, pad_multiple=None, warmup=1, runs=3):
    """Median wall time (s) of ``runs`` forwards after ``warmup`` untimed ones."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            _sync(x.device)
            start = time.perf_counter()
            super_resolve(net, x, scale, pad_multiple)
            _sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _proc_status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} missing from /proc/self/status')


def _memory_child():
    """Entry of the per-model memory process: JSON spec on stdin, JSON result on stdout."""
    job = json.load(sys.stdin)
    import_registries()
    device = torch.device(job['device'])
    net, _, _ = build_network(job['spec'], device, load=False)  # weights do not change memory
    x = torch.rand(job['input_shape'], device=device)
    with torch.inference_mode():
        super_resolve(net, x, job['scale'], job['spec'].get('pad_multiple'))  # lazy init, kernel caches
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            out = super_resolve(net, x, job['scale'], job['spec'].get('pad_multiple'))
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
        else:
            base = _proc_status_kib('VmRSS')
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset VmHWM to the current RSS
            out = super_resolve(net, x, job['scale'], job['spec'].get('pad_multiple'))
            peak = (_proc_status_kib('VmHWM') - base) * 1024
    del out
    print(json.dumps({'peak_bytes': peak}))


def measure_peak_memory(spec, input_shape, scale, device, timeout=900):
    """Peak memory (bytes) of one forward of a freshly built model, measured in a child process."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO_ROOT, env.get('PYTHONPATH')]))
    env['MALLOC_MMAP_THRESHOLD_'] = '131072'  # large blocks come from mmap and go back to the OS on free
    job = {'spec': spec, 'input_shape': list(input_shape), 'scale': scale, 'device': str(device)}
    proc = subprocess.run(
        [sys.executable, '-m', 'rssr_model.benchmark', '--memory-child'],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        if proc.returncode in (-9, 137):
            raise MemoryError('memory process was killed (out of memory)')
        lines = proc.stderr.strip().splitlines() or ['no output']
        raise RuntimeError(f'memory process failed: {lines[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_bytes']


def measure_cost(net, spec, scale, device, cost_opt):
    """Parameters, FLOPs, latency and peak memory at the stated input size."""
    height, width = cost_opt['input_size']
    shape = (cost_opt['batch_size'], 3, height, width)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    pad = spec.get('pad_multiple')
    with torch.inference_mode():
        super_resolve(net, x, scale, pad)  # fail early, before counting, on a wrong size
    result = {'params': count_parameters(net)}
    if hasattr(net, 'analytic_flops'):
        result['flops'], result['flops_method'] = net.analytic_flops(shape), 'analytic'
    else:
        result['flops'], result['flops_method'] = (
            count_flops(lambda t: super_resolve(net, t, scale, pad), x)[0],
            'FlopCounterMode',
        )
    result['macs'] = result['flops'] / 2
    result['latency_s'] = measure_latency(net, x, scale, pad, cost_opt['warmup'], cost_opt['runs'])
    if cost_opt['memory']:
        result['peak_memory_bytes'] = measure_peak_memory(spec, shape, scale, device)
    return result


# ----------------------------------------------------------------------------------------------- data
def _center_crop(img, size):
    h, w = img.shape[:2]
    if min(h, w) < size:
        raise ValueError(f'hr_size {size} is larger than an image of the generated set ({h}x{w}); use <= 300.')
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def _write_lq(gt_rgb, lq_file, scale):
    """Save the MATLAB-bicubic LR of an HR image (mod-cropped to the scale) as 8-bit PNG."""
    import cv2
    from basicsr.utils.matlab_functions import imresize

    h, w = gt_rgb.shape[:2]
    gt_rgb = gt_rgb[: h - h % scale, : w - w % scale]
    lq = np.clip(np.round(imresize(gt_rgb.astype(np.float64) / 255.0, 1 / scale) * 255), 0, 255).astype(np.uint8)
    os.makedirs(osp.dirname(lq_file), exist_ok=True)
    cv2.imwrite(lq_file, cv2.cvtColor(lq, cv2.COLOR_RGB2BGR))


def generate_skimage_set(gt_dir, lq_dir, scale, hr_size=192):
    """Write a small deterministic real-image test set: scikit-image's photographs, centre-cropped.

    ``astronaut``, ``coffee``, ``chelsea``, ``rocket`` (RGB) and the ground textures
    ``grass``, ``gravel``, ``brick`` (grey, repeated to RGB) ship with scikit-image,
    so nothing is downloaded. HR: ``hr_size`` squares; LR: MATLAB bicubic.
    """
    import cv2
    from skimage import data

    os.makedirs(gt_dir, exist_ok=True)
    for name in SKIMAGE_IMAGES:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        gt = _center_crop(img, hr_size)
        # Rewritten every time (7 small images), so a changed hr_size never meets stale files.
        cv2.imwrite(osp.join(gt_dir, f'{name}.png'), cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))
        _write_lq(gt, osp.join(lq_dir, f'{name}.png'), scale)


def make_lq_folder(gt_dir, lq_dir, scale):
    """Write the missing MATLAB-bicubic LR images of every HR image in ``gt_dir``."""
    import cv2

    for name in sorted(os.listdir(gt_dir)):
        lq_file = osp.join(lq_dir, osp.splitext(name)[0] + '.png')
        if osp.isfile(lq_file):
            continue
        gt = cv2.imread(osp.join(gt_dir, name), cv2.IMREAD_COLOR)
        if gt is None:
            raise ValueError(f'Cannot read {osp.join(gt_dir, name)} as an image; remove it from {gt_dir}.')
        _write_lq(cv2.cvtColor(gt, cv2.COLOR_BGR2RGB), lq_file, scale)


def prepare_dataset(name, dataset_opt, scale):
    """Build a test set from its option block; return ``(dataset, note)``, dataset None when skipped."""
    from basicsr.data import build_dataset

    opt = copy.deepcopy(dataset_opt)
    optional, generate, hr_size = opt.pop('optional', False), opt.pop('generate', None), opt.pop('hr_size', 192)
    make_lq = opt.pop('make_lq', None)
    opt.setdefault('name', name)
    opt.update(phase='val', scale=scale)
    opt.setdefault('io_backend', {'type': 'disk'})
    if generate == 'skimage':
        generate_skimage_set(opt['dataroot_gt'], opt['dataroot_lq'], scale, hr_size)
    elif generate:
        raise ValueError(f'Dataset {name}: unknown `generate: {generate}` (only `skimage`).')
    if not osp.exists(opt['dataroot_gt']):
        if optional:
            return None, f'{name}: skipped, {opt["dataroot_gt"]} is absent'
        raise FileNotFoundError(
            f'Dataset {name}: dataroot_gt {opt["dataroot_gt"]} not found; fix the path, '
            'or set `optional: true` to skip it.'
        )
    if make_lq == 'bicubic':
        make_lq_folder(opt['dataroot_gt'], opt['dataroot_lq'], scale)
    elif make_lq:
        raise ValueError(f'Dataset {name}: unknown `make_lq: {make_lq}` (only `bicubic`).')
    opt.setdefault('filename_tmpl', '{}')
    return build_dataset(opt), ''


# ----------------------------------------------------------------------------------------------- quality
def image_metrics(sr_img, gt_img, crop_border):
    """BasicSR's PSNR and SSIM on RGB and on Y of two uint8 BGR HWC images."""
    result = {}
    for channel, y_only in (('rgb', False), ('y', True)):
        kwargs = dict(crop_border=crop_border, input_order='HWC', test_y_channel=y_only)
        result[f'psnr_{channel}'] = float(calculate_psnr(sr_img, gt_img, **kwargs))
        result[f'ssim_{channel}'] = float(calculate_ssim(sr_img, gt_img, **kwargs))
    return result


def evaluate(net, dataset, scale, device, pad_multiple=None, progress=None):
    """Per-image metrics of ``net`` on ``dataset``: list of dicts with ``image`` and METRICS."""
    rows = []
    with torch.inference_mode():
        for index in range(len(dataset)):
            data = dataset[index]
            sr = super_resolve(net, data['lq'].unsqueeze(0).to(device), scale, pad_multiple)
            row = {'image': osp.basename(str(data.get('lq_path', index)))}
            row.update(image_metrics(tensor2img(sr.cpu()), tensor2img(data['gt']), scale))
            rows.append(row)
            if progress is not None:
                progress.update(1)
    return rows


# ----------------------------------------------------------------------------------------------- run
def _error_text(exc):
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'[:300]


def _cost_defaults(cost_opt):
    cost = {'input_size': [48, 48], 'batch_size': 1, 'warmup': 1, 'runs': 3, 'memory': True}
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
    notes = [n for n in [import_registries()] if n]

    datasets, dataset_info = {}, {}
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset, note = prepare_dataset(name, dataset_opt, scale)
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
            row = {'model': entry.get('name') or entry.get('opt') or '?', 'errors': []}
            models.append(row)
            bar.set_postfix_str(row['model'])
            try:
                spec = model_spec(entry)
                row.update(model=spec['name'], arch=spec['network_g']['type'])
                net, row['weights'], note = build_network(spec, device)
                if note:
                    row['errors'].append(note)
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
                    per_image = evaluate(net, dataset, scale, device, spec.get('pad_multiple'), bar)
                except Exception as exc:
                    row['errors'].append(f'{name}: {_error_text(exc)}')
                    continue
                for item in per_image:
                    images.append({'dataset': name, 'model': row['model'], 'weights': row['weights'], **item})
                for metric in METRICS:
                    row[f'{name}/{metric}'] = float(np.mean([item[metric] for item in per_image]))
            del net
            gc.collect()
            if row['errors']:
                log(f'{row["model"]}: ' + '; '.join(row['errors']))

    setup = {
        'scale': scale,
        'device': _device_text(device),
        'quality': quality,
        'input_shape': [cost_opt['batch_size'], 3, *cost_opt['input_size']],
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


# ----------------------------------------------------------------------------------------------- reports
def _fmt(value, spec, scale=1.0):
    return '—' if value is None else format(value / scale, spec)


def markdown_table(result):
    """The summary as Markdown: a setup paragraph and one row per model."""
    setup, datasets = result['setup'], [n for n, v in result['datasets'].items() if isinstance(v, int)]
    batch, _, height, width = setup['input_shape']
    s = setup['scale']
    lines = [
        f'Scale x{s}; {setup["device"]}.',
        f'Cost at input {batch}x3x{height}x{width} (LR) -> {height * s}x{width * s} (SR); latency: median of '
        f'{setup["runs"]} forwards after {setup["warmup"]} warm-up; peak memory: {setup["memory"]}.',
        FLOP_NOTE,
        'Quality: BasicSR calculate_psnr / calculate_ssim on 8-bit images, border crop = scale, RGB and Y '
        '(BT.601), mean over images, on '
        + (', '.join(f'{n} ({result["datasets"][n]} images)' for n in datasets) or 'no test set')
        + '. Quality columns need trained weights: '
        '"random init" rows are cost only'
        + (' (their PSNR/SSIM, when shown, are of untrained networks)' if setup['quality'] == 'all' else '')
        + '.',
        '',
    ]
    header = ['Model', 'Weights', 'Params (M)', 'GFLOPs', 'GMACs', 'Latency (ms)', 'Peak mem (MiB)']
    for name in datasets:
        header += [f'{name} PSNR/SSIM RGB', f'{name} PSNR/SSIM Y']
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
            for channel in ('rgb', 'y'):
                psnr, ssim = row.get(f'{name}/psnr_{channel}'), row.get(f'{name}/ssim_{channel}')
                cells.append('—' if psnr is None else f'{psnr:.2f} / {ssim:.4f}')
        cells.append('; '.join(row['errors']).replace('|', '/'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    for note in setup['notes']:
        lines.append(f'\nNote: {note}')
    return '\n'.join(lines) + '\n'


def _write_csv(file, rows, fields):
    with open(file, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def plot_psnr_vs_flops(result, file):
    """PSNR (RGB) against GFLOPs, one column per test set, bubble area proportional to parameters.

    Models without a PSNR (random init, or failed on the set) are drawn hollow on a
    strip under each panel, at their GFLOPs, so the cost comparison stays complete.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    datasets = [n for n, v in result['datasets'].items() if isinstance(v, int)] or [None]
    models = [row for row in result['models'] if row.get('flops')]
    max_params = max([row['params'] for row in models] + [1])
    lanes = max(sum(1 for row in models if not name or f'{name}/psnr_rgb' not in row) for name in datasets)
    fig, axes = plt.subplots(
        2,
        len(datasets),
        figsize=(6.5 * len(datasets), 5 + 0.3 * lanes),
        squeeze=False,
        sharex='col',
        gridspec_kw={'height_ratios': [4, 0.4 + 0.3 * lanes]},
    )
    for column, name in enumerate(datasets):
        top, strip = axes[0][column], axes[1][column]
        lane = 0
        for row in models:
            gflops, size = row['flops'] / 1e9, 40 + 1500 * row['params'] / max_params
            psnr = row.get(f'{name}/psnr_rgb') if name else None
            if psnr is None:  # one lane per model, so that labels never overlap
                strip.scatter(gflops, lane, s=min(size, 120), facecolors='none', edgecolors='k')
                strip.annotate(
                    f'{row["model"]} ({row.get("weights", "?")}, {row["params"] / 1e6:.2f} M)',
                    (gflops, lane),
                    fontsize=7,
                    xytext=(7, -3),
                    textcoords='offset points',
                )
                lane += 1
            else:
                top.scatter(gflops, psnr, s=size, alpha=0.6, edgecolors='k')
                top.annotate(row['model'], (gflops, psnr), fontsize=8, xytext=(5, 5), textcoords='offset points')
        top.set_xscale('log')
        if models:
            top.set_xlim(min(r['flops'] for r in models) / 3e9, max(r['flops'] for r in models) * 8 / 1e9)
        top.margins(y=0.15)
        top.set_ylabel('PSNR RGB (dB)')
        scale = result['setup']['scale']
        top.set_title(f'x{scale} on {name} (bubble area ~ parameters)' if name else f'x{scale}: no test set')
        strip.set_yticks([])
        strip.set_ylim(lanes - 0.4, -0.6)
        strip.set_ylabel('no PSNR', fontsize=8)
        strip.set_xlabel(f'GFLOPs at input {"x".join(map(str, result["setup"]["input_shape"]))} (log)')
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    plt.close(fig)


def write_reports(result, out_dir):
    """Write ``per_image.csv``, ``summary.csv``, ``summary.md``, ``psnr_vs_flops.png`` and ``result.json``."""
    os.makedirs(out_dir, exist_ok=True)
    _write_csv(osp.join(out_dir, 'per_image.csv'), result['images'], ['dataset', 'model', 'weights', 'image', *METRICS])
    datasets = [n for n, v in result['datasets'].items() if isinstance(v, int)]
    fields = ['model', 'arch', 'weights', 'params', 'flops', 'macs', 'flops_method', 'latency_s', 'peak_memory_bytes']
    fields += [f'{n}/{m}' for n in datasets for m in METRICS]
    summary = [{**row, 'errors': '; '.join(row['errors'])} for row in result['models']]
    _write_csv(osp.join(out_dir, 'summary.csv'), summary, fields + ['errors'])
    with open(osp.join(out_dir, 'summary.md'), 'w') as f:
        f.write(markdown_table(result))
    plot_psnr_vs_flops(result, osp.join(out_dir, 'psnr_vs_flops.png'))
    with open(osp.join(out_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return out_dir


def load_options(opt_path, args=None):
    with open(opt_path) as f:
        opt = yaml.safe_load(f)
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
    if argv[:1] == ['--memory-child']:
        return _memory_child()
    parser = argparse.ArgumentParser(
        description='Benchmark SR models: PSNR/SSIM, parameters, FLOPs, latency, '
        'memory -> CSV, Markdown table and PSNR-vs-FLOPs plot.'
    )
    parser.add_argument('-opt', required=True, help='benchmark option file, e.g. options/benchmark_x4.yml')
    parser.add_argument('--out', help='output folder (default: results/<name>)')
    parser.add_argument('--device', help='cpu | cuda | auto (overrides the option file)')
    parser.add_argument('--quality', choices=('trained', 'all', 'none'), help='which models get PSNR/SSIM')
    parser.add_argument('--runs', type=int, help='timed forwards per model')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'), help='LR size of the cost input')
    parser.add_argument('--models', help='comma-separated model names to run (default: all)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory process')
    parser.add_argument('--data-only', action='store_true', help='write the generated test sets and stop')
    args = parser.parse_args(argv)
    if not osp.isfile(args.opt):
        parser.error(f'option file {args.opt} not found')
    opt = load_options(args.opt, args)
    if args.data_only:
        import_registries()
        for name, dataset_opt in (opt.get('datasets') or {}).items():
            dataset, note = prepare_dataset(name, dataset_opt, opt['scale'])
            print(note or f'{name}: {len(dataset)} images')
        return None
    out_dir = args.out or osp.join('results', opt.get('name', osp.splitext(osp.basename(args.opt))[0]))
    result = run_benchmark(opt)
    write_reports(result, out_dir)
    print(markdown_table(result))
    print(f'Wrote per_image.csv, summary.csv, summary.md, psnr_vs_flops.png to {out_dir}')
    return result


if __name__ == '__main__':
    main()
