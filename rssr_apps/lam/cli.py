"""``rssr-lam`` / ``scripts/lam.py``: local attribution maps of one or several registered networks.

Models come from option files (``-opt``, repeatable: test/train option files,
or benchmark option files with a ``models`` list) or from ``--arch`` with
``--weights``/``--scale``/``--arch-opt``. Every network is built from BasicSR's
``ARCH_REGISTRY`` and loaded through :mod:`rssr_utils.weights`; all models,
weights, the image and the window are checked before the first attribution.

Outputs, per model in ``DIR/<model name>/``: ``attribution.npy`` (C x h x w
signed attribution of the LR input, float64), ``lam.json`` (DI, objective at the
input and at the blurred baseline, settings), ``saliency.png``, ``blend.png``
(saliency over the LR) and ``window.png`` (the window on the SR output); with
several models also ``DIR/comparison.png`` and ``DIR/lam.csv``. Everything is
written into a temporary folder next to ``DIR`` and moved into ``DIR`` only
after every model succeeded; on an error the temporary folder is removed and
``DIR`` is left as it was. Results of the same names already in ``DIR`` are
replaced only with ``--overwrite`` (checked before any work); other entries of
``DIR`` are never touched. ``DIR`` may not be, contain or lie inside an input.
"""

import argparse
import csv
import functools
import inspect
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from os import path as osp

import numpy as np
import torch
import yaml

from rssr_utils.guards import check_apart, check_replace, float_in, int_in, non_negative_int, positive_int
from rssr_utils.image_io import write_image
from rssr_utils.weights import arch_class, scale_argument

from .core import check_settings, check_window, diffusion_index, path_attribution
from .render import blend, comparison_figure, draw_window, saliency_image, saliency_map, to_uint8

logger = logging.getLogger('rssr.lam')


def _scale_of(network_g, opt=None):
    scale = (opt or {}).get('scale') or network_g.get('upscale') or network_g.get('scale')
    return int(scale) if scale else None


def arch_spec(arch, weights=None, scale=None, arch_opts=None, name=None, param_key='params', official=False):
    """A model spec (as :func:`rssr_apps.benchmark.models.model_spec`) for ``--arch``.

    The scale goes to the arch's ``upscale`` or ``scale`` argument, and 3 to
    ``num_in_ch``/``num_out_ch`` when the arch requires them and they are not
    given; SwinIR inputs are padded to its ``window_size`` (as SwinIRModel does).
    """
    from rssr_apps.benchmark.models import model_spec

    cls = arch_class(arch)
    params = inspect.signature(cls.__init__).parameters
    network_g = {'type': arch, **(arch_opts or {})}
    if scale is not None:
        key = scale_argument(cls)
        if key is None:
            raise ValueError(f'{arch} takes no upscale/scale argument; drop --scale or pass it with --arch-opt.')
        network_g.setdefault(key, scale)
    for key in ('num_in_ch', 'num_out_ch'):
        if key in params and params[key].default is inspect.Parameter.empty:
            network_g.setdefault(key, 3)
    pad = None
    if arch == 'SwinIR':
        pad = network_g.get('window_size', params['window_size'].default)
    spec = model_spec(
        {
            'name': name or arch,
            'network_g': network_g,
            'pretrain_network_g': weights,
            'param_key_g': param_key,
            'official': official,
            'pad_multiple': pad,
        }
    )
    spec['scale'] = scale or _scale_of(network_g)
    return spec


def option_specs(opt_path):
    """Model specs of an option file: a test/train option file (one model) or a benchmark one (its ``models``)."""
    from rssr_apps.benchmark.models import model_spec
    from rssr_utils.options import load_options

    if not osp.isfile(opt_path):
        raise FileNotFoundError(f'Option file {opt_path} not found; check -opt.')
    opt = load_options(opt_path)  # an OptionError (a ValueError) names the file and the line
    if 'models' in opt:
        entries = opt['models'] or []
    else:
        entries = [{'opt': opt_path}]
    specs = []
    for entry in entries:
        spec = model_spec(entry)
        spec['scale'] = _scale_of(spec['network_g'], opt)
        spec['opt'] = spec.get('opt') or opt_path
        specs.append(spec)
    if not specs:
        raise ValueError(f'{opt_path}: no models (a benchmark option file needs a non-empty `models` list).')
    return specs


def load_lr(image_path, scale, lr_input=False):
    """The LR image: read with :mod:`rssr_utils.image_io`, downscaled with :func:`bicubic_lr` unless ``lr_input``.

    Returns:
        tuple[Tensor, np.ndarray]: (3, h, w) float32 RGB in [0, 1], and the same as (h, w, 3) uint8.
    """
    from rssr_data.degradations import bicubic_lr
    from rssr_utils.image_io import read_image

    img = read_image(image_path, to_float=False)  # BGR, the file's integer type
    if not lr_input:
        img = bicubic_lr(img, scale, image_path)  # integers in, rounded integers out, as the data sets' LR files
    rgb = img[..., ::-1].astype(np.float32) / np.iinfo(img.dtype).max
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), to_uint8(rgb)


def _folder_names(specs):
    names, seen = [], {}
    for spec in specs:
        base = re.sub(r'[^A-Za-z0-9._-]+', '_', str(spec['name'])).strip('._') or 'model'
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f'{base}_{seen[base]}')
    return names


def prepare_models(specs, device, scale=None, random_init=False):
    """Build and load every model (all errors before any attribution).

    Returns:
        list[tuple[dict, nn.Module, str | None]]: (spec, network in eval mode, weights file or None).
    """
    from rssr_utils.weights import build_model, load_weights

    scales = {s['scale'] for s in specs if s.get('scale')} | ({scale} if scale else set())
    if len(scales) > 1:
        raise ValueError(f'The models have different scales {sorted(scales)}; the window is in SR pixels of one scale.')
    if not scales:
        raise ValueError('No scale in the option files or arch options; pass --scale.')
    scale = scales.pop()
    models = []
    for spec in specs:
        network_g = dict(spec['network_g'])
        if network_g.get('type') == 'FAT' and network_g.get('deterministic_eval') is False:
            logger.warning(
                '%s: deterministic_eval set to true (a path integral needs a deterministic network).', spec['name']
            )
            network_g['deterministic_eval'] = True
        torch.manual_seed(0)  # networks without weights are reproducible
        try:
            net = build_model(network_g, device=device, policy=spec.get('file_policy'))
        except TypeError as error:
            raise TypeError(
                f'{spec["name"]}: network_g {network_g} does not fit {network_g["type"]}: {error}'
            ) from error
        weights = None if random_init else spec.get('pretrain_network_g')
        if weights:
            if not osp.isfile(weights):
                raise FileNotFoundError(
                    f'{spec["name"]}: weights file {weights} not found; fix pretrain_network_g / --weights, '
                    'or pass --random-init to attribute the untrained network.'
                )
            load_weights(net, weights, spec['param_key_g'], spec['official'], spec['strict_load_g'], logger)
        models.append((spec, net.eval(), weights))
    return models, scale


def attribute(net, spec, lr, scale, window, settings, progress=True):
    """LAM of one network on ``lr`` (3, h, w): the :class:`~rssr_apps.lam.core.Attribution` and the seconds it took."""
    from tqdm import tqdm

    from rssr_apps.benchmark.models import super_resolve

    pad = spec.get('pad_multiple')

    def forward(x):  # padded when the arch needs it; the gradient flows back through the padding
        return super_resolve(net, x, scale, pad)

    start = time.perf_counter()
    with tqdm(total=settings['steps'], desc=spec['name'], unit='step', file=sys.stderr, disable=not progress) as bar:
        result = path_attribution(
            forward,
            lr,
            window,
            settings['sigma'],
            settings['steps'],
            settings['kernel_size'],
            settings['batch'],
            net=net,
            progress=bar,
        )
    return result, time.perf_counter() - start


def write_model_outputs(folder, result, lr_rgb, scale, window, alpha, info):
    """Write one model's files into ``folder``; returns the comparison-figure row and the lam.json dict."""
    os.makedirs(folder)
    np.save(osp.join(folder, 'attribution.npy'), result.attribution)
    di = diffusion_index(result.attribution)
    record = {
        **info,
        'di': None if np.isnan(di) else di,
        'objective': result.objective,
        'baseline_objective': result.baseline_objective,
        'attribution_sum': float(result.attribution.sum()),
        'path_objectives': [float(v) for v in result.path_objectives],
    }
    with open(osp.join(folder, 'lam.json'), 'w') as f:
        json.dump(record, f, indent=2)
    saliency = saliency_image(saliency_map(result.attribution), scale)
    mixed = blend(saliency, lr_rgb, alpha)
    window_image = draw_window(to_uint8(result.sr), window)
    for name, img in (('saliency.png', saliency), ('blend.png', mixed), ('window.png', window_image)):
        write_image(osp.join(folder, name), np.ascontiguousarray(img[..., ::-1]))  # RGB -> BGR
    row = {'name': info['model'], 'di': di, 'window_image': window_image, 'saliency': saliency, 'blend': mixed}
    return row, record


def _publish(tmp, out_dir):
    """Move the finished results from ``tmp`` into ``out_dir`` (replacing same-named entries)."""
    if not osp.exists(out_dir):
        os.replace(tmp, out_dir)
        return
    for entry in sorted(os.listdir(tmp)):
        dst = osp.join(out_dir, entry)
        if osp.isdir(dst) and not osp.islink(dst):
            shutil.rmtree(dst)
        elif osp.lexists(dst):
            os.remove(dst)
        os.replace(osp.join(tmp, entry), dst)
    os.rmdir(tmp)


CSV_FIELDS = ('model', 'arch', 'weights', 'di', 'objective', 'baseline_objective', 'attribution_sum', 'seconds')


def run_lam(
    specs,
    image,
    window,
    out_dir,
    lr_input=False,
    scale=None,
    steps=50,
    sigma=1.2,
    kernel_size=9,
    batch=1,
    device='cpu',
    alpha=0.3,
    random_init=False,
    progress=True,
    log=print,
    overwrite=False,
):
    """Attribute every model of ``specs`` and write the outputs (see the module docstring).

    Returns:
        list[dict]: The lam.json record of each model.
    """
    if isinstance(device, str):
        from rssr_apps.benchmark.cli import resolve_device

        device = resolve_device(device)
    settings = {'steps': steps, 'sigma': sigma, 'kernel_size': kernel_size, 'batch': batch}
    check_settings(**settings)
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise ValueError(f'--output {out_dir} exists and is not a folder; choose another path.')
    inputs = [image] + [spec.get(key) for spec in specs for key in ('pretrain_network_g', 'opt')]
    check_apart(out_dir, inputs, '--output')
    written = _folder_names(specs) + (['comparison.png', 'lam.csv'] if len(specs) > 1 else [])
    check_replace([osp.join(out_dir, name) for name in written], overwrite)
    models, scale = prepare_models(specs, device, scale, random_init)
    lr, lr_rgb = load_lr(image, scale, lr_input)
    check_window(window, (lr.shape[1] * scale, lr.shape[2] * scale))
    lr = lr.to(device)
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(out_dir))}.part-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise become DIR's mode
    try:
        rows, records = [], []
        for (spec, net, weights), folder in zip(models, _folder_names(specs)):
            result, seconds = attribute(net, spec, lr, scale, window, settings, progress)
            info = {
                'model': spec['name'],
                'arch': spec['network_g']['type'],
                'weights': weights,
                'opt': spec.get('opt'),
                'image': image,
                'lr_input': lr_input,
                'lr_size': list(lr.shape[1:]),
                'scale': scale,
                'window': list(window),
                **settings,
                'device': str(device),
                'seconds': seconds,
            }
            row, record = write_model_outputs(osp.join(tmp, folder), result, lr_rgb, scale, window, alpha, info)
            rows.append(row)
            records.append(record)
            di = 'n/a' if record['di'] is None else f'{record["di"]:.2f}'
            log(
                f'{spec["name"]}: DI {di}, objective {record["objective"]:.4f} (baseline '
                f'{record["baseline_objective"]:.4f}, attribution sum {record["attribution_sum"]:.4f}), {seconds:.1f} s'
                + ('' if weights else ', random weights')
            )
        if len(records) > 1:
            comparison_figure(osp.join(tmp, 'comparison.png'), rows)
            with open(osp.join(tmp, 'lam.csv'), 'w', newline='') as f:
                writer = csv.DictWriter(f, CSV_FIELDS, extrasaction='ignore')
                writer.writeheader()
                writer.writerows(records)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return records


def _arch_opt(text):
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'--arch-opt {text!r}: use KEY=VALUE (VALUE read as YAML).')
    return key, yaml.safe_load(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Local attribution maps (Gu & Dong, CVPR 2021) of registered SR networks: which LR pixels '
        'the SR output inside a window depends on, with the diffusion index (DI).',
    )
    models = parser.add_argument_group('models (one or more -opt, or --arch)')
    models.add_argument(
        '-opt',
        action='append',
        default=[],
        metavar='OPTION.yml',
        help='test/train option file (network_g, path.pretrain_network_g) or benchmark option file '
        '(models list); repeat for several models',
    )
    models.add_argument('--arch', help='registered arch name (e.g. EDSR, RCAN, SwinIR, TSFNet, FAT)')
    models.add_argument('--weights', help='weights file for --arch (read by rssr_utils.weights)')
    models.add_argument(
        '--arch-opt',
        action='append',
        default=[],
        type=_arch_opt,
        metavar='KEY=VALUE',
        help='constructor argument for --arch (repeatable), e.g. --arch-opt num_block=16',
    )
    models.add_argument('--name', help='model name for --arch (the output folder)')
    models.add_argument('--param-key', default='params', help='checkpoint entry for --weights (default: params)')
    models.add_argument('--official', action='store_true', help="--weights is the authors' checkpoint")
    models.add_argument('--scale', type=positive_int, help='SR scale (default: from the option files / arch options)')
    models.add_argument(
        '--random-init',
        action='store_true',
        help='ignore weights files and attribute untrained networks (seed 0): the map then shows '
        'the architecture prior only',
    )
    parser.add_argument('--image', required=True, help='HR image (downscaled with bicubic_lr) or LR with --lr-input')
    parser.add_argument('--lr-input', action='store_true', help='--image is already the LR input')
    parser.add_argument(
        '--window',
        nargs=3,
        type=non_negative_int,
        required=True,
        metavar=('X', 'Y', 'SIZE'),
        help='window left, top and side in SR pixels',
    )
    parser.add_argument('--output', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--overwrite', action='store_true', help='replace results of the same model names in DIR')
    parser.add_argument('--steps', type=positive_int, default=50, help='path steps (default: 50)')
    parser.add_argument('--sigma', type=float_in(0), default=1.2, help='blur sigma of the baseline (default: 1.2)')
    parser.add_argument('--kernel-size', type=int_in(1, 255, odd=True), default=9, help='odd blur kernel side (9)')
    parser.add_argument('--batch', type=positive_int, default=1, help='path steps per forward/backward (default: 1)')
    parser.add_argument('--alpha', type=float_in(0, 1), default=0.3, help='weight of the LR in blend.png (0.3)')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto (default: auto)')
    parser.add_argument('--threads', type=positive_int, help="CPU threads for PyTorch (default: PyTorch's)")
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if not args.opt and not args.arch:
        parser.error('give at least one -opt OPTION.yml or --arch NAME')
    if args.arch is None and (args.weights or args.arch_opt or args.name):
        parser.error('--weights, --arch-opt and --name go with --arch')
    return args


def main(argv=None):
    from rssr_utils.image_io import ImageError
    from rssr_utils.weights import WeightsError

    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        specs = [spec for path in args.opt for spec in option_specs(path)]
        if args.arch:
            specs.append(
                arch_spec(
                    args.arch, args.weights, args.scale, dict(args.arch_opt), args.name, args.param_key, args.official
                )
            )
        run_lam(
            specs,
            args.image,
            tuple(args.window),
            args.output,
            args.lr_input,
            args.scale,
            args.steps,
            args.sigma,
            args.kernel_size,
            args.batch,
            args.device,
            args.alpha,
            args.random_init,
            not args.no_progress,
            log=functools.partial(print, flush=True),
            overwrite=args.overwrite,
        )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ImageError, WeightsError, RuntimeError) as error:
        print(f'rssr-lam: error: {error}', file=sys.stderr)
        return 1
    print(f'Wrote {args.output}')
    return 0
