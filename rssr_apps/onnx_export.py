"""The ONNX half of ``rssr-export``: trace, metadata, onnxruntime sessions and the check against PyTorch.

:func:`export_onnx` writes one ``model.onnx`` (dynamic batch/height/width, or a fixed
square tile for Deepness; float32 or float16) that onnxruntime 1.16+ runs
(:mod:`rssr_apps.onnx_compat`); :func:`verify_onnx` compares onnxruntime with
PyTorch; :func:`onnx_metadata` / :func:`read_onnx_metadata` are the metadata
Deepness and ``rssr-infer --onnx`` read. :mod:`rssr_apps.export` is the command.
"""

import json
import os

import numpy as np
import torch

from rssr_apps.onnx_profiles import DeployedSR
from rssr_utils.states import save_atomic

DEFAULT_OPSET = 18  # onnxruntime >= 1.14; the dynamo exporter's lowest well-supported opset


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
    props.update({k: info[k] for k in ('bands', 'radiometry') if info.get(k) is not None})
    for key in ('resolution', 'description', 'precision'):  # the Deepness profile's, and --fp16
        if key in info:
            props[key] = info[key]
    return {k: json.dumps(v) for k, v in props.items()}


def read_onnx_metadata(path):
    """The metadata properties of an ONNX file, JSON-decoded."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}


def example_input(multiple, batch=2, channels=3, tile=None):
    """A traced example: non-square, sides not multiples of ``multiple``, batch > 1 (size-1 dims are made
    static); with ``tile`` a (batch, channels, tile, tile) input for a fixed-size graph."""
    if tile:
        return torch.rand(batch, channels, tile, tile)
    side = max(multiple, 2)
    return torch.rand(batch, channels, 2 * side + 3, 3 * side + 1)


def export_onnx(
    net,
    info,
    path,
    opset=DEFAULT_OPSET,
    verify=True,
    optimize=False,
    progress=None,
    tile=None,
    fp16=False,
    fp16_io=False,
    clip=False,
):
    """Trace ``net`` (eval mode, CPU) to ``path`` and add the metadata.

    Args:
        tile (int | None): Fixed square (tile, tile) input, dynamic batch; None: dynamic batch,
            height and width.
        fp16, fp16_io, clip: As :class:`DeployedSR`.
        optimize (bool): Run onnxscript's graph optimizer (minutes for TSFNet on 2 cores;
            onnxruntime optimizes the graph again when it loads it).
        progress (callable | None): Hears of each step as it starts (the trace alone takes minutes for
            large graphs).

    Returns:
        float | None: max |onnxruntime - PyTorch float32| on one input when ``verify``.
    """
    import onnx

    from rssr_apps.onnx_compat import float64_nodes, stamp_lowest_ir
    from rssr_arch.arch_util import export_mode, prepare_export

    progress = progress or (lambda _: None)
    net = prepare_export(net.eval().cpu())
    graph = DeployedSR(net, fp16, fp16_io, clip).eval()
    multiple = info['input']['min_size']
    channels = len(info.get('bands') or [1, 2, 3])
    x = example_input(multiple, channels=channels, tile=tile).to(graph.io_dtype)
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

    progress(f'tracing {info["name"]} to ONNX (torch.export' + (', then onnxscript optimizer)' if optimize else ')'))
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
    written = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), None)
    if written != opset:  # the exporter falls back to its own opset when it cannot convert the graph
        raise ValueError(
            f'--opset {opset}: the exporter cannot write {info["name"]} in that opset (it made opset {written}); '
            f'use --opset {written} or another one it supports.'
        )
    for key, value in onnx_metadata(info, opset).items():
        model.metadata_props.add(key=key, value=value)
    progress('checking the ONNX graph and saving it')
    onnx.checker.check_model(model, full_check=True)
    doubles = float64_nodes(model)
    if doubles:  # every runtime from 1.16 on must run the file: a float64 op is an export-path bug
        raise RuntimeError(f'{path}: the graph computes in float64 at {", ".join(doubles[:5])}; report this.')
    save_atomic(model, path, onnx.save)
    if not verify:
        return None
    progress('comparing onnxruntime with PyTorch on one input')
    reference = DeployedSR(net, clip=clip).eval()  # float32 PyTorch
    return verify_onnx(reference, path, [tuple(x.shape[-2:])], channels=x.shape[1])[0]


def describe_graph(info, multiple, tile=None, fp16=False, fp16_io=False):
    """The ONNX doc string: what goes in and out."""
    dtype = 'float16' if fp16_io else 'float32'
    sides = f'H = W = {tile}' if tile else f'H, W >= {multiple}'
    bands = len(info.get('bands') or [1, 2, 3])
    what = 'RGB' if bands == 3 and not info.get('radiometry') else f'{bands} bands, model values'
    text = (
        f'{info["name"]}: x{info["scale"]} super-resolution. Input {dtype} (B, {bands}, H, W) {what} in [0, 1], '
        f'{sides}; output (B, {bands}, {info["scale"]}H, {info["scale"]}W).'
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


def verify_onnx(net, path, sizes, batch=1, seed=0, channels=3):
    """max |onnxruntime - PyTorch| of ``net`` and its export at each (h, w) in ``sizes`` (random inputs)."""
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for h, w in sizes:
        x = torch.rand(batch, channels, h, w, generator=generator)
        with torch.no_grad():
            ref = net(x).numpy()
        feed = x.numpy().astype(np.float16 if 'float16' in session.get_inputs()[0].type else np.float32)
        out = session.run(None, {session.get_inputs()[0].name: feed})[0].astype(np.float32)
        if out.shape != ref.shape:
            raise RuntimeError(f'{path}: output {out.shape} for input {tuple(x.shape)}, PyTorch gives {ref.shape}.')
        errors.append(float(np.abs(out - ref).max()))
    return errors
