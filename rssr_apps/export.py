"""Export a network for use outside BasicSR (``rssr-export`` / ``scripts/export.py``).

``-opt OPTION.yml`` (its ``network_g``, weights from ``path.pretrain_network_g``
with ``param_key_g``; the arch's initial weights when that is empty) or
``--arch NAME [--arch-args JSON] [--weights FILE]`` picks the network; weights
are read by :mod:`rssr_utils.weights` (no pickled code). ``--output DIR`` gets:

* ``model.safetensors``: the state dict (no pickle), and ``model.json`` beside
  it (the sidecar: ``network_g``, scale, input range, padding, rssr version,
  ``bands`` and the option file's ``radiometry``),
  from which ``rssr-infer --weights DIR/model.safetensors`` and
  :func:`rssr_utils.weights.build_model` rebuild the network;
* ``model.onnx``: float32 NCHW RGB in [0, 1] -> (B, 3, scale*H, scale*W),
  dynamic batch, height and width (sides of at least ``min_input_size`` in
  the metadata), metadata properties for the QGIS Deepness plugin and other
  onnxruntime users (values JSON-encoded). Traced with PyTorch's dynamo
  exporter; TSFNet and FAT take their export paths (real-valued DFTs as matrix
  products, FAT's deterministic-eval rotations as a constant table: see
  :mod:`rssr_arch.arch_util`). SwinIR-style models whose test pads to the
  window (``model_type: SwinIRModel``) are exported with that padding inside
  (:class:`rssr_arch.arch_util.PaddedSR`), so they also take any size.

Every ONNX file runs on onnxruntime 1.16 and later (:mod:`rssr_apps.onnx_compat`:
the lowest IR version the opset needs, no float64 op). ``--deepness --tile T
--resolution-cm R`` writes a QGIS Deepness file (fixed T x T input, output
clipped to [0, 1], no overlap); ``--fp16`` computes in float16 (float32 input
and output unless ``--fp16-io``): :mod:`rssr_apps.onnx_profiles`.

Every file is written under a temporary name and renamed when complete. The
ONNX file is checked with ``onnx.checker`` and its output compared with
PyTorch's through onnxruntime on one input (``--no-verify`` skips that).
"""

import argparse
import contextlib
import io
import json
import logging
import os
import re
import sys
from os import path as osp

import torch

from rssr_apps.onnx_export import DEFAULT_OPSET, export_onnx
from rssr_apps.onnx_profiles import DEEPNESS_NOTE, deepness_profile, resolution_cm_of
from rssr_utils.guards import check_apart, check_replace, float_in, non_negative_int, positive_int
from rssr_utils.states import save_atomic
from rssr_utils.weights import SIDECAR_FORMAT, WeightsError, build_model, model_options, scale_argument, scale_of

FORMATS = ('safetensors', 'onnx')
LICENSE_PLACEHOLDER = 'unspecified: set the licence of your weights before distributing them'


def rssr_version():
    """The installed rssr version (setup.py), or 'unknown'."""
    from importlib import metadata

    try:
        return metadata.version('rssr')
    except metadata.PackageNotFoundError:
        return 'unknown'


def input_multiple(net):
    """Smallest side the exported graph takes, and the multiple inputs are padded to internally."""
    multiple = getattr(net, 'pad_multiple', None)  # FAT, TSFNet and PaddedSR name it so
    return multiple if isinstance(multiple, int) else 1


def describe(net, network_opt, name, pad_multiple=None, tile=256, overlap=32):
    """What the sidecar and the ONNX metadata say about a model (JSON-serialisable dict)."""
    scale = scale_of(network_opt, net)
    multiple = input_multiple(net)
    return {
        'format': SIDECAR_FORMAT,
        'format_version': 1,
        'name': name or network_opt['type'],
        'network_g': network_opt,
        'scale': scale,
        'pad_multiple': pad_multiple,
        'input': {
            'range': [0.0, 1.0],
            'channels': 'RGB',
            'layout': 'NCHW',
            'dtype': 'float32',
            'normalization': 'none: pixel / max value (e.g. /255 for 8-bit), no mean or std',
            'min_size': max(multiple, 2),
        },
        'output': {'range': [0.0, 1.0], 'size': f'{scale} x input (height and width)'},
        'tiling': {'tile': tile, 'overlap': overlap},
        'license': LICENSE_PLACEHOLDER,
        'rssr_version': rssr_version(),
    }


def band_fields(network_opt, radiometry=None, bands=None, where='radiometry'):
    """``bands`` (1-based file bands, in the model's order) and ``radiometry`` (``Radiometry.to_dict()`` of those
    bands, None when none is declared) for the sidecar and the ONNX metadata.

    Args:
        network_opt (dict): ``network_g``; its ``num_in_ch`` (default 3) is the band count.
        radiometry (str | dict | None): The option file's ``radiometry:``; per-band values of the file's bands
            are picked by ``bands``.
        bands (list[int] | None): The datasets' ``bands``; default 1..num_in_ch.
        where (str): Named in errors.
    """
    from types import SimpleNamespace

    from rssr_data.rs_scene_dataset import band_radiometry
    from rssr_utils.radiometry import Radiometry

    count = network_opt.get('num_in_ch') or (len(bands) if bands else 3)
    bands = list(bands or range(1, count + 1))
    if len(bands) != count:
        raise ValueError(f'{where}: bands {bands} are {len(bands)}, network_g.num_in_ch is {count}; make them agree.')
    if radiometry is None:
        return {'bands': bands, 'radiometry': None}
    radiometry = Radiometry.resolve(radiometry, where)
    # Per-band values are for the file's bands (as the datasets read them) when they reach every selected band.
    file = SimpleNamespace(path=where, bands=bands, count=max(len(radiometry.scale), len(radiometry.offset), *bands))
    return {'bands': bands, 'radiometry': band_radiometry(radiometry, file).to_dict()}


def save_safetensors(net, info, path):
    """Write ``net``'s state dict to ``path`` (.safetensors) and ``info`` to the sidecar beside it."""
    from rssr_utils.weights import sidecar_path, write_safetensors

    inner = getattr(net, 'net', net) if info.get('pad_multiple') else net  # PaddedSR holds the arch
    rssr = json.dumps({k: info[k] for k in ('name', 'scale', 'rssr_version')})
    write_safetensors(inner.state_dict(), path, metadata={'format': 'pt', 'rssr': rssr})
    sidecar = dict(info, weights=osp.basename(path))
    save_atomic(sidecar, sidecar_path(path), lambda obj, f: f.write((json.dumps(obj, indent=2) + '\n').encode()))


def export_model(
    network_opt,
    output,
    weights=None,
    param_key='params',
    official=False,
    formats=FORMATS,
    opset=DEFAULT_OPSET,
    name=None,
    pad_multiple=None,
    tile=256,
    overlap=None,
    verify=True,
    optimize=False,
    log=print,
    progress=None,
    overwrite=False,
    radiometry=None,
    bands=None,
    deepness=False,
    resolution_cm=None,
    fp16=False,
    fp16_io=False,
):
    """Export ``network_opt`` (a ``network_g`` dict) with ``weights`` into the folder ``output``.

    Args:
        network_opt (dict): ``network_g`` options.
        output (str): Folder for ``model.safetensors``, ``model.json``, ``model.onnx``.
        weights (str | None): Weights file (read by :mod:`rssr_utils.weights`); None keeps the initial weights.
        param_key, official: As :func:`rssr_utils.weights.build_model`.
        formats (tuple[str]): Any of ``safetensors``, ``onnx``.
        opset (int): ONNX opset. Default: 18.
        name (str | None): Model name for the metadata (default: the arch).
        pad_multiple (int | None): Pad inputs to this multiple inside the model (SwinIR).
        tile, overlap (int): Tiling advice for the metadata (LR pixels); overlap default 32, 0 with ``deepness``.
        verify (bool): Compare onnxruntime with PyTorch on one input.
        optimize (bool): Run onnxscript's optimizer on the graph (slow for large graphs).
        log (callable): Prints what was written. Default: print.
        progress (callable | None): Hears of each step as it starts (rssr-export: a line on stderr).
        overwrite (bool): Replace existing model files in ``output`` (refused otherwise).
        radiometry (str | dict | None): The option file's ``radiometry:`` (recorded, see :func:`band_fields`).
        bands (list[int] | None): The 1-based file bands the model takes (default 1..num_in_ch).

    Returns:
        dict: Paths written and, with ``verify``, ``onnx_max_abs_error``.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f'--formats {",".join(formats)}: choose from {",".join(FORMATS)}.')
    check_apart(output, [weights], '--output')
    files = {'safetensors': ('model.safetensors', 'model.json'), 'onnx': ('model.onnx',)}
    check_replace([osp.join(output, name) for fmt in formats for name in files[fmt]], overwrite)
    progress = progress or (lambda _: None)
    progress(f'building {network_opt["type"]}' + (f' with {weights}' if weights else ''))
    torch.manual_seed(0)  # initial weights (no checkpoint) are reproducible
    net = build_model(network_opt, weights, param_key, official)
    if pad_multiple:
        from rssr_arch.arch_util import PaddedSR

        net = PaddedSR(net, pad_multiple, scale_of(network_opt, net)).eval()
    if scale_of(network_opt, net) is None:
        raise ValueError(f'{network_opt["type"]}: no upscale/scale option; add it to network_g.')
    if overlap is None:
        overlap = 0 if deepness else 32
    if fp16_io and not fp16:
        raise ValueError('--fp16-io needs --fp16.')
    if deepness and overlap:
        raise ValueError(f'--overlap {overlap} with --deepness: Deepness needs 0 ({DEEPNESS_NOTE})')
    info = describe(net, dict(network_opt), name, pad_multiple, tile, overlap)
    info.update(band_fields(network_opt, radiometry, bands))
    if deepness:
        info = deepness_profile(info, tile, resolution_cm)
    if fp16:
        info['precision'] = 'float16, ' + ('float16' if fp16_io else 'float32') + ' input and output'
    os.makedirs(output, exist_ok=True)
    result = {}
    # ONNX first: a graph that cannot be traced leaves no safetensors behind either.
    if 'onnx' in formats:
        result['onnx'] = osp.join(output, 'model.onnx')
        # A failed trace prints and logs its whole graph: kept back, and shown only when the export succeeds.
        shapes_log, printed = logging.getLogger('torch.fx.experimental.symbolic_shapes'), io.StringIO()
        level = shapes_log.level
        shapes_log.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stderr(printed):
                static = dict(tile=tile, clip=True) if deepness else {}
                error = export_onnx(
                    net, info, result['onnx'], opset, verify, optimize, progress, fp16=fp16, fp16_io=fp16_io, **static
                )
            sys.stderr.write(printed.getvalue())
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001  (a tracing failure is pages long: one line, naming the arch)
            cause = exc
            while cause.__cause__ or cause.__context__:  # the innermost error says what could not be traced
                cause = cause.__cause__ or cause.__context__
            first = re.sub(r'\x1b\[[0-9;]*m', '', (str(cause).strip() or type(cause).__name__).splitlines()[0])
            raise ValueError(
                f'{network_opt["type"]}: cannot be exported to ONNX ({first[:160]}); '
                'export it with --formats safetensors, or run it in PyTorch (rssr-infer).'
            ) from exc
        finally:
            shapes_log.setLevel(level)
        if error is not None:
            result['onnx_max_abs_error'] = error
        log(f'wrote {result["onnx"]} (opset {opset}' + (f', max |onnxruntime - torch| {error:.2e})' if verify else ')'))
    if 'safetensors' in formats:
        result['safetensors'] = osp.join(output, 'model.safetensors')
        save_safetensors(net, info, result['safetensors'])
        result['sidecar'] = osp.join(output, 'model.json')
        log(f'wrote {result["safetensors"]} and {result["sidecar"]}')
    return result


def main(argv=None):
    """``rssr-export`` command line; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('-opt', help='BasicSR option file: network_g, path.pretrain_network_g, path.param_key_g')
    which.add_argument('--arch', help='registered arch, e.g. FAT, TSFNet, EDSR')
    parser.add_argument('--arch-args', type=json.loads, default={}, help='JSON constructor arguments of --arch')
    parser.add_argument('--scale', type=positive_int, help='upscale factor, for --arch (sets its upscale argument)')
    parser.add_argument('--weights', help='weights file (default with -opt: its path.pretrain_network_g)')
    parser.add_argument('--param-key', help='checkpoint entry: params or params_ema (default: param_key_g or params)')
    parser.add_argument('--official', action='store_true', help="the authors' TSFNet/FAT checkpoint")
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--formats', default='safetensors,onnx', help='comma-separated: safetensors,onnx')
    parser.add_argument(
        '--opset', type=positive_int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})'
    )
    parser.add_argument('--name', help='model name in the metadata (default: the option file name or the arch)')
    parser.add_argument('--tile', type=positive_int, default=256, help='tile size advice in the metadata, LR pixels')
    parser.add_argument(
        '--overlap',
        type=non_negative_int,
        help='tile overlap advice in the metadata, LR pixels (default 32; 0 with --deepness)',
    )
    parser.add_argument('--overwrite', action='store_true', help='replace model files already in --output')
    parser.add_argument(
        '--deepness',
        action='store_true',
        help='QGIS Deepness file: fixed --tile square input, output clipped to [0, 1]',
    )
    parser.add_argument('--resolution-cm', type=float_in(0, above=True), help='input pixel size in cm, for --deepness')
    parser.add_argument('--resolution-from', help='GeoTIFF whose pixel size (CRS in metres) is --resolution-cm')
    parser.add_argument('--fp16', action='store_true', help='compute in float16 (float32 input and output)')
    parser.add_argument('--fp16-io', action='store_true', help='with --fp16: float16 input and output too')
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    parser.add_argument('--optimize', action='store_true', help="run onnxscript's graph optimizer (slow)")
    args = parser.parse_args(argv)
    if args.overlap is not None and args.overlap >= args.tile:
        parser.error(f'--overlap {args.overlap} must be smaller than --tile {args.tile}')
    try:
        if args.opt:
            spec = model_options(args.opt)
        else:
            network = {'type': args.arch, **args.arch_args}
            if args.scale:
                network[scale_argument(args.arch) or 'upscale'] = args.scale
            spec = {'network_g': network, 'name': None, 'pad_multiple': None}
        weights = args.weights or spec.get('pretrain_network_g')
        if not weights:
            print('rssr-export: warning: no weights, exporting the initial weights', file=sys.stderr)
        export_model(
            spec['network_g'],
            args.output,
            weights,
            args.param_key or spec.get('param_key_g') or 'params',
            args.official,
            tuple(f for f in args.formats.split(',') if f),
            args.opset,
            args.name or spec.get('name'),
            spec.get('pad_multiple'),
            args.tile,
            args.overlap,
            not args.no_verify,
            args.optimize,
            # The real stderr: export_model holds the tracer's own stderr back until the export succeeds.
            progress=lambda step: print(f'rssr-export: {step} ...', file=sys.__stderr__ or sys.stderr, flush=True),
            overwrite=args.overwrite,
            radiometry=spec.get('radiometry'),
            bands=spec.get('bands'),
            deepness=args.deepness,
            resolution_cm=resolution_cm_of(args.resolution_from) if args.resolution_from else args.resolution_cm,
            fp16=args.fp16,
            fp16_io=args.fp16_io,
        )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, WeightsError) as error:
        sys.exit(f'rssr-export: {error}')


if __name__ == '__main__':
    main()
