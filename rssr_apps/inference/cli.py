"""Super-resolve whole scenes in overlapping tiles (``rssr-infer`` / ``scripts/infer.py``).

Tiles of ``--tile`` LR pixels overlap by ``--overlap``. A tile's output gets
weight 0 within ``overlap // 4`` LR pixels of an inner tile edge (where the
network saw padding instead of neighbours), ramps linearly to 1 across the
rest of the overlap, and the weights are normalised to sum to 1 at every
pixel; the result equals a whole-image pass for networks whose receptive-field
radius is at most ``overlap // 4`` LR pixels. ``--overlap 0`` is the official
TSFNet block evaluation: tiles side by side, the last tile of a row or column
moved back inside the scene and overwriting its neighbour.

Memory: the LR scene stays in its own data type; the network sees one batch of
tiles at a time; outputs are accumulated in one float32 band of ``tile*scale``
rows across the output width and finished rows go to the writer. TIFF/GeoTIFF
outputs (rasterio) are written strip by strip, so nothing of the output's size
is ever held; PNG/JPEG encoders need the whole output array (``--ext .tif``
avoids it).

Pixel values: without a radiometry, ``--stretch`` as :mod:`.raster` describes
(the file's type maximum, or the scene's range); with ``--radiometry`` (or one
recorded in the model), stored values are mapped by it and written back in the
input's type with its nodata (:mod:`.scene`). RGB comes from ``--bands``
(1-based) of multi-band rasters.

Files: existing outputs are refused unless ``--overwrite`` (replace them) or
``--skip-existing`` (keep them: continues an interrupted folder run). Scenes
above ``--max-pixels`` by their header, empty or corrupt files are reported by
name and the other scenes of a folder go on.
"""

import argparse
import json
import os
import sys
import time
from os import path as osp

import cv2
import numpy as np
import torch
from tqdm import tqdm

from rssr_utils.guards import check_apart, non_negative_int, positive_int
from rssr_utils.image_io import MAX_PIXELS, add_max_pixels_argument, shown
from rssr_utils.memory import peak_rss_mib
from rssr_utils.radiometry import Radiometry
from rssr_utils.tiling import TiledSR
from rssr_utils.weights import build_model, model_options, read_sidecar, scale_argument, scale_of

from .raster import (
    IMAGE_EXTENSIONS,
    TIFF_EXTENSIONS,
    _ArrayWriter,
    _rasterio,
    _TiffWriter,
    from_unit,
    nodata_mask,
    read_scene,
    value_range,
)
from .report import write_report
from .scene import declared_radiometry, super_resolve_scene


def super_resolve_file(engine, src, dst, bands=(1, 2, 3), stretch='auto', progress=True, max_pixels=MAX_PIXELS):
    """Super-resolve ``src`` into ``dst`` through a temporary file renamed at the end.

    Returns:
        dict: 'offset', 'span' of the value mapping and 'tiles' of this scene.
    """
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ValueError(f'{dst}: output would overwrite its input; choose another output folder.')
    data, meta = read_scene(src, bands, max_pixels)
    offset, span = value_range(data, meta, stretch)
    _, h, w = data.shape
    s = engine.scale
    th, tw, ys, xs = engine.grid(h, w)
    # Hidden, and never an image name a folder scan would take; the final name may hold any byte (os.replace).
    tmp = osp.join(osp.dirname(dst), f'.rssr-infer-{os.getpid()}.part{osp.splitext(dst)[1]}')
    use_rasterio = dst.lower().endswith(TIFF_EXTENSIONS) and _rasterio() is not None
    stretched = not (
        np.issubdtype(meta['dtype'], np.unsignedinteger) and (offset, span) == (0.0, float(np.iinfo(meta['dtype']).max))
    )
    bar = tqdm(total=len(ys) * len(xs), desc=osp.basename(src), unit='tile', disable=not progress)
    writer = None
    try:
        writer = (_TiffWriter if use_rasterio else _ArrayWriter)(tmp, meta, h * s, w * s, s)
        if use_rasterio and stretched:
            writer.file.update_tags(RSSR_STRETCH=f'value = {offset!r} + {span!r} * x, x = network output in [0, 1]')
        nodata = meta['nodata']
        for top, rows in engine.rows(data, offset, span, progress=bar.update):
            out = from_unit(rows, offset, span, meta['dtype'])
            mask = nodata_mask(data[:, top // s : (top + rows.shape[1]) // s], nodata)
            if mask is not None and mask.any():  # nodata stays nodata (nearest upsampling of the LR mask)
                out[mask.repeat(s, 1).repeat(s, 2)] = np.nan if nodata is None else nodata
            writer.write(top, out)
        writer.close()
        writer = None
        os.replace(tmp, dst)
    finally:
        bar.close()
        if writer is not None:
            writer.abort()
        if osp.exists(tmp):
            os.remove(tmp)
    return {'offset': offset, 'span': span, 'tiles': len(ys) * len(xs)}


def load_network(args):
    """The network the arguments name: (callable network, scale or None, weights or None).

    ``--onnx``: :class:`~rssr_apps.inference.onnx.OnnxSR` (scale from its metadata);
    ``-opt``/``--arch``: built and loaded by :func:`rssr_utils.weights.build_model`;
    ``--weights`` alone: rebuilt from the sidecar beside the weights.
    """
    if args.onnx:
        from .onnx import OnnxSR

        net = OnnxSR(args.onnx, args.device)
        if args.scale and net.upscale and args.scale != net.upscale:
            raise ValueError(f'--scale {args.scale}: {args.onnx} is x{net.upscale}; drop --scale.')
        return net, args.scale or net.upscale, args.onnx
    if args.opt:
        spec = model_options(args.opt)
    elif args.arch:
        network = {'type': args.arch, **args.arch_args}
        key = args.scale and scale_argument(args.arch)
        if key and network.setdefault(key, args.scale) != args.scale:
            raise ValueError(f'--scale {args.scale} and --arch-args {key}: {network[key]} disagree; give one of them.')
        spec = {'network_g': network}
    else:
        spec = {'network_g': None}  # from the sidecar of --weights
    weights = args.weights or spec.get('pretrain_network_g')
    param_key = args.param_key or spec.get('param_key_g') or 'params'
    net = build_model(spec['network_g'], weights, param_key, args.official, args.device, spec.get('file_policy'))
    network_g = spec['network_g'] or read_sidecar(weights)['network_g']
    scale = scale_of(network_g, net)
    if scale and args.scale and scale != args.scale:  # never run another scale than the one asked for
        raise ValueError(f'--scale {args.scale}: the model is x{scale}; drop --scale or use a x{args.scale} model.')
    return net, scale or args.scale, weights


def main(argv=None):
    """``rssr-infer`` command line; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='image file or folder (PNG, JPEG, TIFF, GeoTIFF)')
    parser.add_argument('output', help='output folder (outputs keep the input file names)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('-opt', help='BasicSR option file: its network_g builds the model')
    which.add_argument('--arch', help='registered arch, e.g. FAT, TSFNet')
    which.add_argument('--onnx', help='model.onnx from rssr-export, run by onnxruntime (CUDA with --device cuda)')
    parser.add_argument('--arch-args', type=json.loads, default={}, help='JSON constructor arguments of --arch')
    parser.add_argument(
        '--weights',
        help="weights: BasicSR checkpoint, .safetensors, or an authors' file with --official "
        '(default with -opt: its path.pretrain_network_g). Alone, a model.safetensors from rssr-export: '
        'the network comes from the model.json beside it',
    )
    parser.add_argument(
        '--param-key',
        help='checkpoint entry to load: params or params_ema (default with -opt: its param_key_g, else params)',
    )
    parser.add_argument('--official', action='store_true', help='convert an official TSFNet/FAT checkpoint')
    parser.add_argument('--scale', type=positive_int, help='upscale factor when the arch has no `upscale` argument')
    parser.add_argument('--tile', type=positive_int, default=256, help='tile side, LR pixels (default 256)')
    parser.add_argument(
        '--overlap',
        type=non_negative_int,
        default=32,
        help='tile overlap, LR pixels (default 32); 0: side by '
        'side, as the official TSFNet evaluation (x8: --tile 32 --overlap 0 = 256 HR blocks)',
    )
    parser.add_argument('--batch-size', type=positive_int, default=4, help='tiles per forward (default 4)')
    parser.add_argument(
        '--bands',
        type=positive_int,
        nargs='+',
        help="1-based bands to super-resolve (default: the model's bands, else 1 2 3; with a radiometry: all)",
    )
    parser.add_argument(
        '--radiometry',
        help='stored values -> model values: a profile (sentinel2_l2a, landsat_c2_l2, uint8, uint12, uint16) or '
        "JSON numbers; default: -opt's radiometry, the model.json or ONNX metadata, else --stretch",
    )
    parser.add_argument(
        '--report', action='store_true', help='LR consistency of each output (no HR needed): printed and <output>.json'
    )
    parser.add_argument(
        '--stretch',
        choices=['auto', 'dtype', 'minmax'],
        default='auto',
        help='value mapping to [0, 1] (see above; default auto)',
    )
    parser.add_argument('--ext', help="output format by extension, e.g. .tif (default: the input's)")
    parser.add_argument('--ensemble', action='store_true', help='x8 self-ensemble (flips and rotations)')
    parser.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'], default='fp32', help='autocast on CUDA')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    existing.add_argument(
        '--skip-existing', action='store_true', help='keep existing outputs (continue an interrupted folder run)'
    )
    add_max_pixels_argument(parser, 'scenes')
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: no CUDA device here; use --device cpu')
    if args.precision != 'fp32' and not args.device.startswith('cuda'):
        parser.error(f'--precision {args.precision} is for CUDA devices')
    if not (args.opt or args.arch or args.onnx or args.weights):
        parser.error('give the model: -opt, --arch, --onnx, or --weights DIR/model.safetensors (with its model.json)')
    if args.onnx and (args.weights or args.precision != 'fp32'):
        parser.error('--onnx runs the exported float32 model: no --weights or --precision with it')
    try:
        check_apart(args.output, [args.input, args.weights, args.onnx, args.opt], 'output folder')
    except ValueError as error:
        sys.exit(f'rssr-infer: {error}')
    try:
        net, scale, weights = load_network(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        sys.exit(f'rssr-infer: {error}')
    if not scale:
        parser.error('the arch has no `upscale` argument: pass --scale')
    if not weights:
        print('rssr-infer: warning: no --weights, running an untrained network', file=sys.stderr)
    try:
        radiometry, bands = declared_radiometry(args, net)
    except ValueError as error:
        sys.exit(f'rssr-infer: {error}')
    if args.report and radiometry is None:
        parser.error('--report compares values in a radiometry: pass --radiometry (uint8 for 8-bit RGB)')
    if radiometry is None and bands and len(bands) != 3:
        parser.error(f'--bands {" ".join(map(str, bands))}: without a radiometry, 3 (RGB) bands; pass --radiometry')
    try:
        device = 'cpu' if args.onnx else args.device  # onnxruntime takes and returns CPU arrays
        engine = TiledSR(net, scale, args.tile, args.overlap, args.batch_size, device, args.ensemble, args.precision)
    except ValueError as error:
        parser.error(str(error))
    if osp.isdir(args.input):
        files = sorted(osp.join(args.input, f) for f in os.listdir(args.input) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            sys.exit(f'rssr-infer: {args.input}: no PNG/JPEG/TIFF images.')
    elif osp.isfile(args.input):
        files = [args.input]
    else:
        sys.exit(f'rssr-infer: {args.input}: no such file or folder.')
    names = [osp.basename(f) for f in files]
    outputs = [osp.join(args.output, osp.splitext(n)[0] + args.ext if args.ext else n) for n in names]
    if len(set(outputs)) < len(outputs):
        twice = sorted({dst for dst in outputs if outputs.count(dst) > 1})
        sys.exit(f'rssr-infer: several inputs would write {twice[0]}; rename them or drop --ext.')
    done = [dst for dst in outputs if osp.exists(dst)]
    if done and not (args.overwrite or args.skip_existing):
        sys.exit(
            f'rssr-infer: {len(done)} output(s) exist, e.g. {done[0]}; pass --overwrite to replace them, or '
            '--skip-existing to keep them (continues an interrupted run). Nothing was written.'
        )
    if args.skip_existing and done:
        print(f'rssr-infer: {len(done)} existing output(s) kept (--skip-existing)', file=sys.stderr)
        files = [f for f, o in zip(files, outputs) if o not in done]
        outputs = [o for o in outputs if o not in done]
    os.makedirs(args.output, exist_ok=True)
    start, failed = time.time(), []
    for src, dst in zip(files, outputs):
        try:
            if radiometry is None:
                super_resolve_file(
                    engine, src, dst, bands or (1, 2, 3), args.stretch, not args.quiet, max_pixels=args.max_pixels
                )
            else:
                with tqdm(desc=osp.basename(src), unit='tile', disable=args.quiet) as bar:
                    done = super_resolve_scene(engine, src, dst, radiometry, bands, bar.update, args.max_pixels)
            if args.report:
                print(write_report(src, dst, scale, Radiometry.resolve(done['radiometry']), done['bands']))
        except (ValueError, OSError, cv2.error, MemoryError) as error:  # this scene only: report it, go on
            named = src in str(error) or shown(src) in str(error)
            print(f'rssr-infer: {error}' if named else f'rssr-infer: {shown(src)}: {error}', file=sys.stderr)
            failed.append(shown(src))
        except RuntimeError as error:  # out of memory and other runtime failures: the next scene would fail too
            hint = ' Lower --batch-size or --tile.' if 'out of memory' in str(error).lower() else ''
            sys.exit(f'rssr-infer: {src}: {error}{hint}')
    cuda = (
        f', peak CUDA memory {torch.cuda.max_memory_allocated(engine.device) / 2**20:.0f} MiB'
        if engine.device.type == 'cuda'
        else ''
    )
    print(
        f'{len(files) - len(failed)} scene(s), {engine.tiles_done} tiles of {args.tile}px (overlap {args.overlap}, '
        f'x{scale}), {time.time() - start:.1f} s, peak RSS {peak_rss_mib():.0f} MiB{cuda} -> {args.output}'
    )
    if failed:
        sys.exit(f'rssr-infer: {len(failed)} of {len(files)} scene(s) failed: {", ".join(failed)}')
