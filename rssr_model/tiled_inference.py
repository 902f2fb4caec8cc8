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

Pixel values (``--stretch``): ``dtype`` divides by the type's maximum (255 for
8-bit, 65535 for 16-bit: exact and independent of the scene); ``minmax`` maps
the scene's smallest and largest RGB value (nodata excluded) to 0 and 1, the
same map for the three bands so colours keep their ratios (``auto``: ``dtype``
for 8/16-bit, ``minmax`` for other integer and float rasters). Results are
mapped back, clipped to that range, rounded for integer types and written in
the input's data type. GeoTIFFs keep CRS, tags and nodata (nodata pixels stay
nodata), the geotransform's pixel size is divided by the scale, and the output
is tiled and DEFLATE-compressed. RGB comes from ``--bands`` (1-based, default
1 2 3) of multi-band rasters.
"""

import argparse
import json
import os
import sys
import time
import warnings
from os import path as osp

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

TIFF_EXTENSIONS = ('.tif', '.tiff')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp') + TIFF_EXTENSIONS


def tile_starts(length, tile, overlap):
    """Start offsets of tiles covering ``length`` with at least ``overlap`` between neighbours."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def blend_weights(starts, tile, scale, overlap):
    """1-D output weights of each tile along one axis, summing to 1 at every output pixel.

    Args:
        starts (list[int]): Tile starts (LR pixels), from :func:`tile_starts`.
        tile (int): Tile length, LR pixels.
        scale (int): Upscale factor.
        overlap (int): Requested overlap; 0 means later tiles overwrite earlier ones.

    Returns:
        list[np.ndarray]: One (tile * scale,) float32 array per tile.
    """
    d = (np.arange(tile * scale) + 0.5) / scale  # LR distance of each output sample from the tile start
    margin = overlap // 4
    ramp = overlap - 2 * margin
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(tile * scale, np.float64)
        if overlap == 0:
            if i + 1 < len(starts):
                w[(starts[i + 1] - start) * scale :] = 0
        else:  # only inner edges fade, where a neighbour takes over
            if i > 0:
                w *= np.clip((d - margin) / ramp, 0, 1)
            if i + 1 < len(starts):
                w *= np.clip((tile - d - margin) / ramp, 0, 1)
        weights.append(w)
    total = np.zeros((starts[-1] + tile) * scale)
    for start, w in zip(starts, weights):
        total[start * scale : (start + tile) * scale] += w
    return [(w / total[start * scale : (start + tile) * scale]).astype(np.float32) for start, w in zip(starts, weights)]


class TiledSR:
    """Runs ``net`` over an image in overlapping tiles and yields finished output rows.

    Args:
        net (nn.Module): Maps (B, C, h, w) in [0, 1] to (B, C, h*scale, w*scale).
        scale (int): Upscale factor.
        tile (int): Tile side in LR pixels. Default: 256.
        overlap (int): Overlap between neighbouring tiles, LR pixels. Default: 32.
        batch_size (int): Tiles per forward (tiles of one tile row batch together). Default: 4.
        device (str | torch.device): Where the network runs. Default: 'cpu'.
        ensemble (bool): Average the 8 flips/rotations (x8 self-ensemble). Default: False.
        precision (str): 'fp32', or 'fp16'/'bf16' autocast. Default: 'fp32'.
    """

    def __init__(self, net, scale, tile=256, overlap=32, batch_size=4, device='cpu', ensemble=False, precision='fp32'):
        if not 0 <= overlap < tile:
            raise ValueError(f'--overlap {overlap} must be at least 0 and smaller than --tile {tile}.')
        self.net, self.scale, self.tile, self.overlap = net, scale, tile, overlap
        self.batch_size, self.device, self.ensemble = batch_size, torch.device(device), ensemble
        self.dtype = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
        self.tiles_done = 0

    def grid(self, height, width):
        """Tile side and starts along each axis: (th, tw, ys, xs)."""
        th, tw = min(self.tile, height), min(self.tile, width)
        return th, tw, tile_starts(height, th, self.overlap), tile_starts(width, tw, self.overlap)

    @torch.no_grad()
    def _forward(self, batch):
        """(B, C, h, w) float32 array in [0, 1] -> (B, C, h*scale, w*scale) float32 array."""
        x = torch.from_numpy(batch).to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            if not self.ensemble:
                return self.net(x).float().cpu().numpy()
            out = 0
            for k in range(4):
                for flip in (False, True):
                    t = torch.rot90(x, k, (2, 3))
                    t = t.flip(3) if flip else t
                    y = self.net(t).float()
                    y = y.flip(3) if flip else y
                    out = out + torch.rot90(y, -k, (2, 3))
            return (out / 8).cpu().numpy()

    def rows(self, img, offset=0.0, span=1.0, progress=None):
        """Super-resolve ``img`` band by band.

        Args:
            img (np.ndarray): (C, H, W) of any numeric type; ``(img - offset) / span`` is the
                network input in [0, 1]. Tiles are converted one at a time.
            offset (float): Value mapped to 0. Default: 0.
            span (float): Value range mapped to [0, 1]. Default: 1.
            progress (callable, optional): Called with the number of tiles after each forward.

        Yields:
            (int, np.ndarray): Output row of the first row, and (C, n, W*scale) float32 rows,
            top to bottom, in the network's [0, 1] scale. The rows are a view of the
            accumulator, valid (and free to modify) until the next iteration.
        """
        c, h, w = img.shape
        s = self.scale
        th, tw, ys, xs = self.grid(h, w)
        wys = blend_weights(ys, th, s, self.overlap)
        wxs = blend_weights(xs, tw, s, self.overlap)
        acc = np.zeros((c, th * s, w * s), np.float32)  # output rows [top, top + th*s)
        top = 0
        for y, wy in zip(ys, wys):
            shift = y * s - top
            if shift:  # rows above this tile row are final
                yield top, acc[:, :shift]  # a view: the consumer is done with it when we resume
                acc[:, : acc.shape[1] - shift] = acc[:, shift:]
                acc[:, acc.shape[1] - shift :] = 0
                top = y * s
            for j0 in range(0, len(xs), self.batch_size):
                chunk = range(j0, min(j0 + self.batch_size, len(xs)))
                tiles = np.stack([img[:, y : y + th, xs[j] : xs[j] + tw] for j in chunk]).astype(np.float32)
                if (offset, span) != (0.0, 1.0):  # clip: only nodata lies outside the range
                    tiles = np.clip(np.nan_to_num((tiles - offset) / span), 0, 1)
                for j, tile_out in zip(chunk, self._forward(tiles)):
                    acc[:, :, xs[j] * s : (xs[j] + tw) * s] += tile_out * (wy[:, None] * wxs[j][None, :])
                self.tiles_done += len(chunk)
                if progress:
                    progress(len(chunk))
        yield top, acc

    def __call__(self, img, offset=0.0, span=1.0):
        """img: (C, H, W) -> (C, H*scale, W*scale) float32 in the network's [0, 1] scale."""
        return np.concatenate([rows.copy() for _, rows in self.rows(img, offset, span)], axis=1)


# ---------------------------------------------------------------------------- model


def build_model(arch=None, arch_args=None, opt=None, weights=None, official=False, device='cpu'):
    """Build a registered arch and load weights; returns (net in eval mode on ``device``, upscale or None).

    Args:
        arch (str): Registered arch name (ignored with ``opt``).
        arch_args (dict): Constructor arguments of ``arch``.
        opt (str): BasicSR option file whose ``network_g`` builds the model.
        weights (str): Checkpoint: bare state dict or BasicSR's ``params``/``params_ema``.
        official (bool): ``weights`` is the authors' file: convert it with ``rssr_arch.convert_official_state_dict``.
        device (str): Where the network runs.
    """
    import rssr_arch
    from rssr_cli import build_network

    if opt:
        try:
            with open(opt) as f:
                net_opt = dict(yaml.safe_load(f)['network_g'])
        except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
            raise ValueError(f'{opt}: no readable network_g section ({error!r}).') from error
    else:
        net_opt = {'type': arch, **(arch_args or {})}
    from basicsr.utils.registry import ARCH_REGISTRY

    if net_opt.get('type') not in ARCH_REGISTRY:
        raise ValueError(f'Unknown arch {net_opt.get("type")!r}; registered: {sorted(ARCH_REGISTRY.keys())}.')
    try:
        net = build_network(net_opt)
    except TypeError as error:  # an argument the arch does not take; the message lists the accepted ones
        raise ValueError(str(error)) from error
    arch = net_opt.pop('type')
    if weights:
        try:
            checkpoint = torch.load(weights, map_location='cpu', weights_only=not official)
        except FileNotFoundError:
            raise
        except Exception as error:  # pickle/zip errors of a file that is not a checkpoint
            raise ValueError(f'{weights}: not a readable PyTorch checkpoint ({error}).') from error
        state = rssr_arch.unwrap_checkpoint(checkpoint)
        if official:
            state = rssr_arch.convert_official_state_dict(arch, state)
        own = net.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(
                f'{weights} does not fit {arch}({net_opt}): {len(missing)} missing keys {missing[:3]}, '
                f'{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of other shapes {wrong[:3]}. '
                "Check --arch-args (e.g. upscale, widths), or pass --official for the authors' files."
            )
        net.load_state_dict(state, strict=True)
    return net.eval().to(device), net_opt.get('upscale', getattr(net, 'upscale', None))


# ---------------------------------------------------------------------------- I/O


def _rasterio():
    try:
        import rasterio

        return rasterio
    except ImportError:
        return None


def read_scene(path, bands=(1, 2, 3)):
    """Read the RGB bands of a scene.

    Returns:
        (np.ndarray, dict): (3, H, W) array in the file's data type, and metadata: 'dtype',
        'nodata' (or None), and for files read by rasterio 'profile' and 'tags'.
    """
    rasterio = _rasterio() if path.lower().endswith(TIFF_EXTENSIONS) else None
    if rasterio is not None:
        try:
            with rasterio.open(path) as src:
                if src.count < 3 and tuple(bands) == (1, 2, 3):
                    raise ValueError(
                        f'{path}: has {src.count} band(s); super-resolution needs RGB. Pass --bands '
                        'with three band numbers, or convert the image.'
                    )
                if max(bands) > src.count or min(bands) < 1:
                    raise ValueError(f'{path}: has {src.count} bands, --bands asks for {list(bands)}.')
                data = src.read(list(bands))
                meta = {'profile': src.profile.copy(), 'tags': src.tags(), 'nodata': src.nodata}
        except rasterio.errors.RasterioIOError as error:
            raise ValueError(f'{path}: cannot be read ({error}).') from error
    else:
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(
                f'{path}: cannot be read or decoded; check the file (multi-band and GeoTIFF files '
                'need the geo extra: pip install ".[geo]").'
            )
        if raw.ndim == 2 or raw.shape[2] not in (3, 4):
            raise ValueError(
                f'{path}: has {1 if raw.ndim == 2 else raw.shape[2]} band(s); only RGB(A) images are '
                'supported here (use a GeoTIFF with --bands for multi-band rasters).'
            )
        data = raw[..., 2::-1].transpose(2, 0, 1)  # BGR(A) -> RGB, CHW; alpha dropped
        meta = {'nodata': None}
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ValueError(f'{path}: pixel type {data.dtype} is not supported (integer or float rasters are).')
    meta['dtype'] = data.dtype
    return np.ascontiguousarray(data), meta


def value_range(data, meta, stretch='auto'):
    """(offset, span): ``(data - offset) / span`` maps the scene to [0, 1] (see the module docstring)."""
    dtype = meta['dtype']
    if stretch == 'auto':
        stretch = 'dtype' if dtype in (np.uint8, np.uint16) else 'minmax'
    if stretch == 'dtype':
        if not np.issubdtype(dtype, np.unsignedinteger):
            raise ValueError(f'--stretch dtype needs unsigned integers, the scene is {dtype}: use --stretch minmax.')
        return 0.0, float(np.iinfo(dtype).max)
    valid = data if meta['nodata'] is None else data[data != meta['nodata']]
    valid = valid[np.isfinite(valid)] if np.issubdtype(dtype, np.floating) else valid
    if valid.size == 0:
        return 0.0, 1.0
    low, high = float(valid.min()), float(valid.max())
    return low, (high - low) or 1.0


def from_unit(rows, offset, span, dtype):
    """Map float32 network output (overwritten, to save a copy) back to the scene's values and data type."""
    np.clip(rows, 0, 1, out=rows)  # the stretched range
    rows *= span
    rows += offset
    if np.issubdtype(dtype, np.integer):
        np.round(rows, out=rows)
    return rows.astype(dtype, copy=False)


class _TiffWriter:
    """Tiled, DEFLATE-compressed (Geo)TIFF written strip by strip with rasterio.

    Rows are written in whole rows of 256x256 blocks (the rest waits for the next
    strip): GDAL keeps partly written blocks in its cache, up to 5% of the RAM.
    """

    block = 256

    def __init__(self, path, meta, height, width, scale):
        rasterio = _rasterio()
        profile = dict(meta.get('profile') or {})
        if profile.get('transform', rasterio.Affine.identity()) != rasterio.Affine.identity():
            profile['transform'] = profile['transform'] @ rasterio.Affine.scale(1 / scale)  # pixel size / scale
        else:  # no georeferencing: write none rather than a made-up pixel size
            profile.pop('transform', None)
        for key in ('photometric', 'blockxsize', 'blockysize', 'interleave'):
            profile.pop(key, None)
        profile.update(
            driver='GTiff',
            width=width,
            height=height,
            count=3,
            dtype=meta['dtype'],
            tiled=True,
            blockxsize=self.block,
            blockysize=self.block,
            compress='deflate',
            bigtiff='if_safer',
        )
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
            self.file = rasterio.open(path, 'w', **profile)
        self.file.update_tags(**meta.get('tags', {}))
        self.window = rasterio.windows.Window
        self.height, self.pending = height, None

    def write(self, top, rows):
        if self.pending is not None:
            top, rows = self.pending_top, np.concatenate([self.pending, rows], axis=1)
        end = top + rows.shape[1]
        cut = rows.shape[1] if end == self.height else end // self.block * self.block - top
        if cut:
            self.file.write(rows[:, :cut], window=self.window(0, top, rows.shape[2], cut))
        self.pending, self.pending_top = (rows[:, cut:].copy(), top + cut) if cut < rows.shape[1] else (None, None)

    def close(self):
        self.file.close()

    abort = close


class _ArrayWriter:
    """PNG/JPEG/BMP/TIFF through OpenCV: holds the whole output array until ``close``."""

    def __init__(self, path, meta, height, width, scale):
        self.path, self.array = path, np.empty((height, width, 3), meta['dtype'])

    def write(self, top, rows):
        self.array[top : top + rows.shape[1]] = rows.transpose(1, 2, 0)[..., ::-1]  # RGB -> BGR

    def close(self):
        if not cv2.imwrite(self.path, self.array):
            raise ValueError(
                f'cannot write {self.path}: OpenCV has no encoder for {self.array.dtype} images of '
                'this extension (try --ext .tif), or the folder is not writable.'
            )

    def abort(self):
        self.array = None


def super_resolve_file(engine, src, dst, bands=(1, 2, 3), stretch='auto', progress=True):
    """Super-resolve ``src`` into ``dst`` through a temporary file renamed at the end.

    Returns:
        dict: 'offset', 'span' of the value mapping and 'tiles' of this scene.
    """
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ValueError(f'{dst}: output would overwrite its input; choose another output folder.')
    data, meta = read_scene(src, bands)
    offset, span = value_range(data, meta, stretch)
    _, h, w = data.shape
    s = engine.scale
    th, tw, ys, xs = engine.grid(h, w)
    tmp = f'{dst}.part{osp.splitext(dst)[1]}'
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
            if nodata is not None:  # nodata stays nodata (nearest upsampling of the LR mask)
                lr = data[:, top // s : (top + rows.shape[1]) // s]
                mask = (np.isnan(lr) if np.isnan(nodata) else lr == nodata).repeat(s, 1).repeat(s, 2)
                out[mask] = nodata
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


def peak_rss_mib():
    """Peak resident memory of this process (VmHWM), MiB."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1024


def main(argv=None):
    """``rssr-infer`` command line; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(
        prog='rssr-infer', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('input', help='image file or folder (PNG, JPEG, TIFF, GeoTIFF)')
    parser.add_argument('output', help='output folder (outputs keep the input file names)')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('-opt', help='BasicSR option file: its network_g builds the model')
    which.add_argument('--arch', help='registered arch, e.g. FAT, TSFNet')
    parser.add_argument('--arch-args', type=json.loads, default={}, help='JSON constructor arguments of --arch')
    parser.add_argument('--weights', help='checkpoint (BasicSR params/params_ema, or official with --official)')
    parser.add_argument('--official', action='store_true', help='convert an official TSFNet/FAT checkpoint')
    parser.add_argument('--scale', type=int, help='upscale factor when the arch has no `upscale` argument')
    parser.add_argument('--tile', type=int, default=256, help='tile side, LR pixels (default 256)')
    parser.add_argument(
        '--overlap',
        type=int,
        default=32,
        help='tile overlap, LR pixels (default 32); 0: side by '
        'side, as the official TSFNet evaluation (x8: --tile 32 --overlap 0 = 256 HR blocks)',
    )
    parser.add_argument('--batch-size', type=int, default=4, help='tiles per forward (default 4)')
    parser.add_argument('--bands', type=int, nargs=3, default=(1, 2, 3), help='RGB band numbers of GeoTIFFs')
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
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: no CUDA device here; use --device cpu')
    if args.precision != 'fp32' and not args.device.startswith('cuda'):
        parser.error(f'--precision {args.precision} is for CUDA devices')
    try:
        net, upscale = build_model(args.arch, args.arch_args, args.opt, args.weights, args.official, args.device)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f'rssr-infer: {error}')
    scale = upscale or args.scale
    if not scale:
        parser.error('the arch has no `upscale` argument: pass --scale')
    if args.weights is None:
        print('rssr-infer: warning: no --weights, running an untrained network', file=sys.stderr)
    try:
        engine = TiledSR(
            net, scale, args.tile, args.overlap, args.batch_size, args.device, args.ensemble, args.precision
        )
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
    clash = next((src for src, dst in zip(files, outputs) if osp.exists(dst) and osp.samefile(src, dst)), None)
    if clash:
        sys.exit(f'rssr-infer: {clash}: the output would overwrite its input; choose another output folder.')
    os.makedirs(args.output, exist_ok=True)
    start, failed = time.time(), []
    for src, dst in zip(files, outputs):
        try:
            super_resolve_file(engine, src, dst, args.bands, args.stretch, progress=not args.quiet)
        except (ValueError, FileNotFoundError) as error:
            print(f'rssr-infer: {error}', file=sys.stderr)
            failed.append(src)
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


if __name__ == '__main__':
    main()
