"""What an exported ONNX graph computes around the network, and the deployment profiles of ``rssr-export``.

* :class:`DeployedSR`: the traced module: precision (``--fp16``: the network in
  float16 with its precision-critical parts in float32, see :func:`half_network`),
  input/output dtype (``--fp16-io``), output clipping;
* :func:`deepness_profile`: what a QGIS Deepness file needs (``--deepness``): a
  fixed square tile, no overlap, the pixel size, the output clipped to [0, 1].
"""

import copy

import torch


class DeployedSR(torch.nn.Module):
    """What an ONNX file computes around the network: precision, input/output types, clipping.

    Args:
        net (nn.Module): float32 network (eval mode).
        fp16 (bool): Run the network in float16 (see :func:`half_network`). Default: False.
        fp16_io (bool): float16 input and output (else float32, cast inside the graph). Default: False.
        clip (bool): Clip the output to [0, 1] (for tools that scale it to 8 bits). Default: False.
    """

    def __init__(self, net, fp16=False, fp16_io=False, clip=False):
        super().__init__()
        self.net = half_network(net) if fp16 else net
        self.dtype = torch.float16 if fp16 else torch.float32
        self.io_dtype = torch.float16 if fp16_io else torch.float32
        self.clip = clip

    def forward(self, x):
        """x: (B, 3, H, W) in [0, 1], io dtype -> (B, 3, sH, sW), io dtype."""
        y = self.net(x.to(self.dtype))
        if self.clip:
            y = y.clamp(0, 1)
        return y.to(self.io_dtype)


def _cast(value, dtype):
    """``value`` with its floating tensors (also inside lists and tuples) cast to ``dtype``."""
    if torch.is_tensor(value):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def half_network(net):
    """A float16 copy of ``net``; submodules whose class sets ``keep_float32 = True`` (spectra, whose
    amplitudes exceed float16's range) and layer norms stay float32, with their inputs cast to float32
    and outputs back (onnxruntime 1.16 has no float16 LayerNormalization kernel on CPU and fails
    expanding it; the statistics also keep float32 precision)."""
    half = copy.deepcopy(net).half()
    kept = []  # outermost kept modules only: those inside one already run in float32
    for name, module in half.named_modules():
        if any(name.startswith(outer + '.') for outer in kept):
            continue
        if getattr(module, 'keep_float32', False) or isinstance(module, torch.nn.LayerNorm):
            kept.append(name)
            module.float()
            module.register_forward_pre_hook(lambda _, args: _cast(args, torch.float32))
            module.register_forward_hook(lambda _, args, out: _cast(out, torch.float16))
    return half


DEEPNESS_NOTE = (
    "tiles_overlap 0: Deepness's super-resolution writes each whole scale*tile output into a "
    'scale*stride slot, so overlapping tiles would be cut, not blended.'
)


def deepness_profile(info, tile, resolution_cm):
    """``info`` for a QGIS Deepness file: fixed square ``tile``, no overlap, ``resolution`` (cm/px).

    Deepness reads ``model_type``, ``tile_size``, ``tiles_overlap`` (percent) and
    ``resolution`` from the metadata, and the scale from the fixed output shape;
    it divides 8-bit pixels by 255 and applies ``standardization_mean/std`` only
    when present: our networks take [0, 1] with no standardisation, so none is written.
    """
    if tile < info['input']['min_size']:
        raise ValueError(f'--tile {tile}: {info["name"]} needs tiles of at least {info["input"]["min_size"]} pixels.')
    if not resolution_cm or resolution_cm <= 0:
        raise ValueError(
            '--deepness needs the input pixel size: --resolution-cm R (cm per LR pixel) or --resolution-from SCENE.tif.'
        )
    return dict(info, tiling={'tile': tile, 'overlap': 0}, resolution=float(resolution_cm), description=DEEPNESS_NOTE)


def resolution_cm_of(path):
    """The pixel size of a GeoTIFF in cm (its CRS must count in metres), for ``--resolution-from``."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            units = src.crs.linear_units if src.crs else None
            sizes = (abs(src.transform.a), abs(src.transform.e))
    except rasterio.errors.RasterioIOError as error:
        raise FileNotFoundError(f'--resolution-from {path}: cannot open it ({error}).') from None
    if units not in ('metre', 'meter'):
        raise ValueError(f'--resolution-from {path}: its CRS is not in metres ({units}); give --resolution-cm.')
    if abs(sizes[0] - sizes[1]) > 1e-6 * sizes[0]:
        raise ValueError(f'--resolution-from {path}: pixels are not square {sizes}; give --resolution-cm.')
    return sizes[0] * 100
