"""Export a network for use outside BasicSR (``rssr-export`` / ``scripts/export.py``).

``-opt OPTION.yml`` (its ``network_g``, weights from ``path.pretrain_network_g``
with ``param_key_g``; the arch's initial weights when that is empty) or
``--arch NAME [--arch-args JSON] [--weights FILE]`` picks the network; weights
are read by :mod:`rssr_utils.weights` (no pickled code). ``--output DIR`` gets:

* ``model.safetensors``: the state dict (no pickle), and ``model.json`` beside
  it (the sidecar: ``network_g``, scale, input range, padding, rssr version),
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
import json
import os
import sys
from os import path as osp

import numpy as np
import torch

from rssr_apps.onnx_profiles import DEEPNESS_NOTE, DeployedSR, deepness_profile, resolution_cm_of
from rssr_utils.states import save_atomic
from rssr_utils.weights import SIDECAR_FORMAT, WeightsError, build_model, model_options, scale_argument, scale_of

FORMATS = ('safetensors', 'onnx')
DEFAULT_OPSET = 18  # onnxruntime >= 1.14; the dynamo exporter's lowest well-supported opset
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
    for attr in ('pad_multiple', 'lr_multiple', 'multiple'):  # FAT, TSFNet, PaddedSR
        if isinstance(getattr(net, attr, None), int):
            return getattr(net, attr)
    return 1


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


def save_safetensors(net, info, path):
    """Write ``net``'s state dict to ``path`` (.safetensors) and ``info`` to the sidecar beside it."""
    from rssr_utils.weights import sidecar_path, write_safetensors

    inner = getattr(net, 'net', net) if info.get('pad_multiple') else net  # PaddedSR holds the arch
    rssr = json.dumps({k: info[k] for k in ('name', 'scale', 'rssr_version')})
    write_safetensors(inner.state_dict(), path, metadata={'format': 'pt', 'rssr': rssr})
    sidecar = dict(info, weights=osp.basename(path))
    save_atomic(sidecar, sidecar_path(path), lambda obj, f: f.write((json.dumps(obj, indent=2) + '\n').encode()))


def onnx_metadata(info, opset):
    """ONNX ``metadata_props``: Deepness keys (``model_type``, ``tile_size``, ``tiles_overlap`` in percent)
    and the rest of ``info``; every value JSON-encoded, as Deepness reads them."""
    tile, overlap = info['tiling']['tile'], info['tiling']['overlap']
    props = {
        'model_type': 'Superresolution',
        'scale_factor': info['scale'],
        'tile_size': tile,
        'tiles_overlap': round(100 * overlap / tile),
        'tile_overlap_px': overlap,
        'input_range': info['input']['range'],
        'output_range': info['output']['range'],
        'normalization': info['input']['normalization'],
        'channels': info['input']['channels'],
        'layout': info['input']['layout'],
        'min_input_size': info['input']['min_size'],
        'name': info['name'],
        'arch': info['network_g']['type'],
        'network_g': info['network_g'],
        'license': info['license'],
        'rssr_version': info['rssr_version'],
        'opset': opset,
    }
    for key in ('resolution', 'description', 'precision'):  # the Deepness profile's, and --fp16
        if key in info:
            props[key] = info[key]
    return {k: json.dumps(v) for k, v in props.items()}


def read_onnx_metadata(path):
    """The metadata properties of an ONNX file, JSON-decoded."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def example_input(multiple, batch=2, tile=None):
    """A traced example: non-square, sides not multiples of ``multiple``, batch > 1 (size-1 dims are made
    static); with ``tile`` a (batch, 3, tile, tile) input for a fixed-size graph."""
    if tile:
        return torch.rand(batch, 3, tile, tile)
    side = max(multiple, 2)
    return torch.rand(batch, 3, 2 * side + 3, 3 * side + 1)


def export_onnx(
    net, info, path, opset=DEFAULT_OPSET, verify=True, optimize=False, tile=None, fp16=False, fp16_io=False, clip=False
):
    """Trace ``net`` (eval mode, CPU) to ``path`` and add the metadata.

    Args:
        tile (int | None): Fixed square (tile, tile) input, dynamic batch; None: dynamic batch,
            height and width.
        fp16, fp16_io, clip: As :class:`DeployedSR`.
        optimize (bool): Run onnxscript's graph optimizer (minutes for TSFNet on 2 cores;
            onnxruntime optimizes the graph again when it loads it).

    Returns:
        float | None: max |onnxruntime - PyTorch float32| on one input when ``verify``.
    """
    import onnx

    from rssr_apps.onnx_compat import float64_nodes, stamp_lowest_ir
    from rssr_arch.arch_util import export_mode, prepare_export

    net = prepare_export(net.eval().cpu())
    graph = DeployedSR(net, fp16, fp16_io, clip).eval()
    multiple = info['input']['min_size']
    x = example_input(multiple, tile=tile).to(graph.io_dtype)
    batch = torch.export.Dim('batch', min=1, max=1024)
    if tile:
        dynamic = ({0: batch},)
    else:
        dynamic = (
            {
                0: batch,
                2: torch.export.Dim('height', min=multiple, max=16384),
                3: torch.export.Dim('width', min=multiple, max=16384),
            },
        )
    with torch.no_grad(), export_mode():
        program = torch.onnx.export(
            graph,
            (x,),
            dynamo=True,
            opset_version=opset,
            input_names=['input'],
            output_names=['output'],
            dynamic_shapes=dynamic,
            external_data=False,
            optimize=optimize,
            verbose=False,
        )
    if not optimize:  # the unoptimised graph can repeat value names (e.g. RCAN's): make them unique
        from onnx_ir.passes.common import NameFixPass

        NameFixPass()(program.model)
    model = stamp_lowest_ir(program.model_proto)
    model.producer_name, model.producer_version = 'rssr', info['rssr_version']
    model.doc_string = describe_graph(info, multiple, tile, fp16, fp16_io)
    for key, value in onnx_metadata(info, opset).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    doubles = float64_nodes(model)
    if doubles:  # every runtime from 1.16 on must run the file: a float64 op is an export-path bug
        raise RuntimeError(f'{path}: the graph computes in float64 at {", ".join(doubles[:5])}; report this.')
    save_atomic(model, path, onnx.save)
    if not verify:
        return None
    reference = DeployedSR(net, clip=clip).eval()  # float32 PyTorch
    return verify_onnx(reference, path, [tuple(x.shape[-2:])])[0]


def describe_graph(info, multiple, tile=None, fp16=False, fp16_io=False):
    """The ONNX doc string: what goes in and out."""
    dtype = 'float16' if fp16_io else 'float32'
    sides = f'H = W = {tile}' if tile else f'H, W >= {multiple}'
    text = (
        f'{info["name"]}: x{info["scale"]} super-resolution. Input {dtype} (B, 3, H, W) RGB in [0, 1], {sides}; '
        f'output (B, 3, {info["scale"]}H, {info["scale"]}W) in [0, 1].'
    )
    if fp16:
        text += ' Computed in float16.'
    if 'description' in info:
        text += ' ' + info['description']
    return text


def onnx_session(path, device='cpu', threads=None):
    """An onnxruntime session: CUDA when asked for and available, else CPU (``threads``: intra-op threads)."""
    import onnxruntime as ort

    providers = ['CPUExecutionProvider']
    if str(device).startswith('cuda') and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no constant-folding notes on every load
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), options, providers=providers)


def verify_onnx(net, path, sizes, batch=1, seed=0):
    """max |onnxruntime - PyTorch| of ``net`` and its export at each (h, w) in ``sizes`` (random inputs)."""
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for h, w in sizes:
        x = torch.rand(batch, 3, h, w, generator=generator)
        with torch.no_grad():
            ref = net(x).numpy()
        feed = x.numpy().astype(np.float16 if 'float16' in session.get_inputs()[0].type else np.float32)
        out = session.run(None, {session.get_inputs()[0].name: feed})[0].astype(np.float32)
        if out.shape != ref.shape:
            raise RuntimeError(f'{path}: output {out.shape} for input {tuple(x.shape)}, PyTorch gives {ref.shape}.')
        errors.append(float(np.abs(out - ref).max()))
    return errors


def export_model(
    network_opt,
    output,
    weights=None,
    param_key='params',
    official=False,
    trust_pickle=False,
    formats=FORMATS,
    opset=DEFAULT_OPSET,
    name=None,
    pad_multiple=None,
    tile=256,
    overlap=None,
    verify=True,
    optimize=False,
    log=print,
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
        param_key, official, trust_pickle: As :func:`rssr_utils.weights.build_model`.
        formats (tuple[str]): Any of ``safetensors``, ``onnx``.
        opset (int): ONNX opset. Default: 18.
        name (str | None): Model name for the metadata (default: the arch).
        pad_multiple (int | None): Pad inputs to this multiple inside the model (SwinIR).
        tile, overlap (int): Tiling advice for the metadata (LR pixels); overlap default 32, 0 with ``deepness``.
        verify (bool): Compare onnxruntime with PyTorch on one input.
        optimize (bool): Run onnxscript's optimizer on the graph (slow for large graphs).

    Returns:
        dict: Paths written and, with ``verify``, ``onnx_max_abs_error``.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f'--formats {",".join(formats)}: choose from {",".join(FORMATS)}.')
    torch.manual_seed(0)  # initial weights (no checkpoint) are reproducible
    net = build_model(network_opt, weights, param_key, official, trust_pickle=trust_pickle)
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
    if deepness:
        info = deepness_profile(info, tile, resolution_cm)
    if fp16:
        info['precision'] = 'float16, ' + ('float16' if fp16_io else 'float32') + ' input and output'
    os.makedirs(output, exist_ok=True)
    result = {}
    if 'safetensors' in formats:
        result['safetensors'] = osp.join(output, 'model.safetensors')
        save_safetensors(net, info, result['safetensors'])
        result['sidecar'] = osp.join(output, 'model.json')
        log(f'wrote {result["safetensors"]} and {result["sidecar"]}')
    if 'onnx' in formats:
        result['onnx'] = osp.join(output, 'model.onnx')
        static = dict(tile=tile, clip=True) if deepness else {}
        error = export_onnx(net, info, result['onnx'], opset, verify, optimize, fp16=fp16, fp16_io=fp16_io, **static)
        if error is not None:
            result['onnx_max_abs_error'] = error
        log(f'wrote {result["onnx"]} (opset {opset}' + (f', max |onnxruntime - torch| {error:.2e})' if verify else ')'))
    return result


def main(argv=None):
    """``rssr-export`` command line; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(
        prog='rssr-export', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('-opt', help='BasicSR option file: network_g, path.pretrain_network_g, path.param_key_g')
    which.add_argument('--arch', help='registered arch, e.g. FAT, TSFNet, EDSR')
    parser.add_argument('--arch-args', type=json.loads, default={}, help='JSON constructor arguments of --arch')
    parser.add_argument('--scale', type=int, help='upscale factor, for --arch (sets its upscale argument)')
    parser.add_argument('--weights', help='weights file (default with -opt: its path.pretrain_network_g)')
    parser.add_argument('--param-key', help='checkpoint entry: params or params_ema (default: param_key_g or params)')
    parser.add_argument('--official', action='store_true', help="the authors' TSFNet/FAT checkpoint")
    parser.add_argument(
        '--trust-pickle', action='store_true', help='allow pickled objects in the checkpoint (runs code from it)'
    )
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--formats', default='safetensors,onnx', help='comma-separated: safetensors,onnx')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--name', help='model name in the metadata (default: the option file name or the arch)')
    parser.add_argument('--tile', type=int, default=256, help='tile size advice in the metadata, LR pixels')
    parser.add_argument(
        '--overlap', type=int, help='tile overlap advice in the metadata, LR pixels (default 32; 0 with --deepness)'
    )
    parser.add_argument(
        '--deepness',
        action='store_true',
        help='QGIS Deepness file: fixed --tile square input, output clipped to [0, 1]',
    )
    parser.add_argument('--resolution-cm', type=float, help='input pixel size in cm, for --deepness')
    parser.add_argument('--resolution-from', help='GeoTIFF whose pixel size (CRS in metres) is --resolution-cm')
    parser.add_argument('--fp16', action='store_true', help='compute in float16 (float32 input and output)')
    parser.add_argument('--fp16-io', action='store_true', help='with --fp16: float16 input and output too')
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    parser.add_argument('--optimize', action='store_true', help="run onnxscript's graph optimizer (slow)")
    args = parser.parse_args(argv)
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
            args.trust_pickle,
            tuple(f for f in args.formats.split(',') if f),
            args.opset,
            args.name or spec.get('name'),
            spec.get('pad_multiple'),
            args.tile,
            args.overlap,
            not args.no_verify,
            args.optimize,
            deepness=args.deepness,
            resolution_cm=resolution_cm_of(args.resolution_from) if args.resolution_from else args.resolution_cm,
            fp16=args.fp16,
            fp16_io=args.fp16_io,
        )
    except (ValueError, TypeError, FileNotFoundError, WeightsError) as error:
        sys.exit(f'rssr-export: {error}')


if __name__ == '__main__':
    main()
