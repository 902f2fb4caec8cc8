"""Super-resolve whole scenes in overlapping tiles (``rssr-infer`` / ``scripts/infer.py``).

Tiles of ``tile`` LR pixels overlap by ``overlap``; each tile's output is
weighted by a window that is 0 within ``overlap // 4`` LR pixels of an inner
tile edge (where the network saw padding instead of neighbours) and ramps
linearly to 1 across the rest of the overlap, so seams vanish and the result
equals a whole-image pass for networks whose receptive-field radius is at most
``overlap // 4`` LR pixels. Outputs are accumulated one band of tile rows at a
time and finished rows are handed to the writer, so working memory is set by
the tile size and the scene width, not by the scene height; the output array
(PNG/JPEG) or GeoTIFF strips are the only full-size data.

Pixel values: 8-bit images are scaled by 1/255 and 16-bit ones by 1/65535 to
[0, 1] (reversible, independent of the image); results are rounded back to the
input's type. GeoTIFFs keep their CRS, tags and nodata; the geotransform's
pixel size is divided by the scale; the output is tiled and DEFLATE-compressed.
RGB comes from ``--bands`` (1-based, default 1 2 3) of multi-band rasters.
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
import yaml
from tqdm import tqdm

GEO_EXTENSIONS = ('.tif', '.tiff')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp') + GEO_EXTENSIONS


def tile_starts(length, tile, overlap):
    """Start offsets of tiles covering ``length`` with at least ``overlap`` between neighbours."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def edge_weights(size, scale, margin, ramp, first, last):
    """1-D blending weights of one tile's output (``size`` LR pixels -> ``size*scale``)."""
    d = (np.arange(size * scale) + 0.5) / scale  # distance in LR pixels from the tile's start
    w = np.ones(size * scale, np.float32)
    for dist, is_border in ((d, first), (size - d, last)):
        if not is_border:  # only inner edges, where a neighbour tile takes over
            w *= np.clip((dist - margin) / max(ramp, 1e-6), 0, 1)
    return w


class TiledSR:
    """Runs ``net`` over an image in overlapping tiles and yields finished output rows.

    Args:
        net (nn.Module): Maps (B, C, h, w) in [0, 1] to (B, C, h*scale, w*scale).
        scale (int): Upscale factor.
        tile (int): Tile side in LR pixels.
        overlap (int): Overlap between neighbouring tiles, LR pixels.
        batch_size (int): Tiles per forward.
        device (str | torch.device): Where the network runs.
        ensemble (bool): Average the 8 flips/rotations (x8 self-ensemble).
        precision (str): 'fp32', or 'fp16'/'bf16' autocast on CUDA.
    """

    def __init__(self, net, scale, tile=256, overlap=32, batch_size=4, device='cpu', ensemble=False,
                 precision='fp32'):
        if overlap >= tile:
            raise ValueError(f'overlap {overlap} must be smaller than the tile {tile}.')
        self.net, self.scale, self.tile, self.overlap = net, scale, tile, overlap
        self.batch_size, self.device, self.ensemble = batch_size, torch.device(device), ensemble
        self.dtype = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
        self.margin = overlap // 4
        self.ramp = overlap - 2 * self.margin
        self.tiles_done = 0

    @torch.no_grad()
    def _forward(self, batch):
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

    def rows(self, img):
        """img: (C, H, W) float32 in [0, 1]. Yields (y0, rows) with rows (C, n, W*scale), top to bottom."""
        c, h, w = img.shape
        s, th, tw = self.scale, min(self.tile, h), min(self.tile, w)
        ys, xs = tile_starts(h, th, self.overlap), tile_starts(w, tw, self.overlap)
        acc = np.zeros((c, th * s, w * s), np.float32)
        wsum = np.zeros((th * s, w * s), np.float32)
        top = 0  # output row of acc[:, 0]
        for i, y in enumerate(ys):
            shift = y * s - top
            if shift:
                yield top, acc[:, :shift] / np.maximum(wsum[:shift], 1e-8)
                acc = np.roll(acc, -shift, axis=1)
                wsum = np.roll(wsum, -shift, axis=0)
                acc[:, -shift:] = 0
                wsum[-shift:] = 0
                top = y * s
            wy = edge_weights(th, s, self.margin, self.ramp, i == 0, i == len(ys) - 1)
            for j0 in range(0, len(xs), self.batch_size):
                chunk = xs[j0:j0 + self.batch_size]
                out = self._forward(np.stack([img[:, y:y + th, x:x + tw] for x in chunk]))
                for j, (x, tile_out) in enumerate(zip(chunk, out), start=j0):
                    wx = edge_weights(tw, s, self.margin, self.ramp, j == 0, j == len(xs) - 1)
                    weight = wy[:, None] * wx[None, :]
                    acc[:, :, x * s:(x + tw) * s] += tile_out * weight
                    wsum[:, x * s:(x + tw) * s] += weight
                self.tiles_done += len(chunk)
        yield top, acc / np.maximum(wsum, 1e-8)

    def __call__(self, img):
        """img: (C, H, W) float32 in [0, 1] -> (C, H*scale, W*scale) float32."""
        return np.concatenate([rows for _, rows in self.rows(img)], axis=1)


# ---------------------------------------------------------------------------- model

def build_model(arch=None, arch_args=None, opt=None, weights=None, official=False, device='cpu'):
    """Build a registered arch (from ``--arch``/``--arch-args`` or an option file's ``network_g``) and load weights."""
    import rssr_arch
    import rssr_model  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY

    if opt:
        with open(opt) as f:
            net_opt = dict(yaml.safe_load(f)['network_g'])
        arch = net_opt.pop('type')
        kwargs = net_opt
    else:
        kwargs = dict(arch_args or {})
    if arch not in ARCH_REGISTRY:
        raise ValueError(f'Unknown arch {arch!r}; registered: {sorted(ARCH_REGISTRY.keys())}.')
    net = ARCH_REGISTRY.get(arch)(**kwargs)
    if weights:
        state = rssr_arch.unwrap_checkpoint(torch.load(weights, map_location='cpu', weights_only=not official))
        if official:
            state = rssr_arch.convert_official_state_dict(arch, state)
        missing, unexpected = [], []
        own = net.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(f'{weights} does not fit {arch}({kwargs}): {len(missing)} missing keys {missing[:3]}, '
                             f'{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of other shapes {wrong[:3]}. '
                             'Check --arch-args (e.g. upscale, widths) or pass --official for the authors\' files.')
        net.load_state_dict(state, strict=True)
    return net.eval().to(device), kwargs.get('upscale', getattr(net, 'upscale', None))


# ---------------------------------------------------------------------------- I/O

def read_scene(path, bands=(1, 2, 3)):
    """Return (img (3, H, W) float32 in [0, 1], meta) for PNG/JPEG/TIFF (rasterio for GeoTIFF when installed)."""
    if path.lower().endswith(GEO_EXTENSIONS) and _rasterio() is not None:
        rasterio = _rasterio()
        try:
            with rasterio.open(path) as src:
                if src.count < 3 and tuple(bands) == (1, 2, 3):
                    raise ValueError(f'{path}: has {src.count} band(s); super-resolution needs RGB. Pass --bands '
                                     'with three band numbers, or convert the image.')
                if max(bands) > src.count:
                    raise ValueError(f'{path}: has {src.count} bands, --bands asks for {list(bands)}.')
                data = src.read(list(bands))
                meta = {'kind': 'geotiff', 'profile': src.profile.copy(), 'tags': src.tags(),
                        'transform': src.transform, 'dtype': data.dtype}
        except rasterio.errors.RasterioIOError as error:
            raise ValueError(f'{path}: cannot be read ({error}).') from error
    else:
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f'{path}: cannot be read or decoded; check the file (for GeoTIFF metadata install the '
                             'geo extra: pip install ".[geo]").')
        if raw.ndim == 2 or raw.shape[2] not in (3, 4):
            raise ValueError(f'{path}: has {1 if raw.ndim == 2 else raw.shape[2]} band(s); only RGB(A) images are '
                             'supported here (use a GeoTIFF with --bands for multi-band rasters).')
        data = raw[..., 2::-1].transpose(2, 0, 1)  # BGR(A) -> RGB, CHW; alpha dropped
        meta = {'kind': 'image', 'dtype': raw.dtype}
    if data.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{path}: pixel type {data.dtype} is not supported (8- or 16-bit integers are).')
    peak = np.iinfo(data.dtype).max
    return np.ascontiguousarray(data, dtype=np.float32) / peak, meta


def _rasterio():
    try:
        import rasterio
        return rasterio
    except ImportError:
        return None


def to_dtype(rows, dtype):
    peak = np.iinfo(dtype).max
    return np.clip(np.round(rows * peak), 0, peak).astype(dtype)


def super_resolve_file(engine, src, dst, bands=(1, 2, 3), progress=True):
    """Super-resolve ``src`` into ``dst`` through a temporary file renamed at the end. Returns tiles done."""
    img, meta = read_scene(src, bands)
    _, h, w = img.shape
    s = engine.scale
    tmp = f'{dst}.part{osp.splitext(dst)[1]}'
    ys = tile_starts(h, min(engine.tile, h), engine.overlap)
    bar = tqdm(total=len(ys), desc=osp.basename(src), unit='tile-row', disable=not progress)
    try:
        if meta['kind'] == 'geotiff':
            rasterio = _rasterio()
            from rasterio.windows import Window
            profile = dict(meta['profile'])
            transform = meta['transform'] @ type(meta['transform']).scale(1 / s)  # pixel size / scale
            profile.update(width=w * s, height=h * s, count=3, transform=transform, tiled=True, blockxsize=256,
                           blockysize=256, compress='deflate', driver='GTiff', dtype=meta['dtype'])
            profile.pop('photometric', None)
            with rasterio.open(tmp, 'w', **profile) as out:
                out.update_tags(**meta['tags'])
                for top, rows in engine.rows(img):
                    out.write(to_dtype(rows, meta['dtype']), window=Window(0, top, w * s, rows.shape[1]))
                    bar.update()
        else:
            result = np.empty((h * s, w * s, 3), meta['dtype'])
            for top, rows in engine.rows(img):
                result[top:top + rows.shape[1]] = to_dtype(rows, meta['dtype']).transpose(1, 2, 0)[..., ::-1]
                bar.update()
            if not cv2.imwrite(tmp, result):
                raise ValueError(f'cannot write {tmp}; check the output folder and extension.')
        os.replace(tmp, dst)
    finally:
        bar.close()
        if osp.exists(tmp):
            os.remove(tmp)


def peak_rss_mib():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(prog='rssr-infer', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='image file or folder (PNG, JPEG, TIFF, GeoTIFF)')
    parser.add_argument('output', help='output folder')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('-opt', help='BasicSR option file: its network_g builds the model')
    which.add_argument('--arch', help='registered arch, e.g. FAT, TSFNet')
    parser.add_argument('--arch-args', type=json.loads, default={}, help='JSON constructor arguments')
    parser.add_argument('--weights', help='checkpoint (BasicSR params/params_ema, or official with --official)')
    parser.add_argument('--official', action='store_true', help='convert an official TSFNet/FAT checkpoint')
    parser.add_argument('--scale', type=int, help='upscale factor when the arch has no `upscale` argument')
    parser.add_argument('--tile', type=int, default=256, help='tile side, LR pixels (TSFNet x8: 32 = the official '
                        '256 HR evaluation blocks)')
    parser.add_argument('--overlap', type=int, default=32, help='tile overlap, LR pixels')
    parser.add_argument('--batch-size', type=int, default=4, help='tiles per forward')
    parser.add_argument('--bands', type=int, nargs=3, default=(1, 2, 3), help='RGB band numbers of GeoTIFFs')
    parser.add_argument('--ensemble', action='store_true', help='x8 self-ensemble (flips and rotations)')
    parser.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'], default='fp32', help='autocast on CUDA')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    try:
        net, upscale = build_model(args.arch, args.arch_args, args.opt, args.weights, args.official, args.device)
        scale = upscale or args.scale
        if not scale:
            parser.error('the arch has no `upscale` argument: pass --scale')
        if args.weights is None:
            print('warning: no --weights, running an untrained network', file=sys.stderr)
        engine = TiledSR(net, scale, args.tile, args.overlap, args.batch_size, args.device, args.ensemble,
                         args.precision if args.device.startswith('cuda') else 'fp32')
        if osp.isdir(args.input):
            files = sorted(osp.join(args.input, f) for f in os.listdir(args.input) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not files:
                raise ValueError(f'{args.input}: no PNG/JPEG/TIFF images.')
        else:
            files = [args.input]
        os.makedirs(args.output, exist_ok=True)
        start = time.time()
        for src in files:
            super_resolve_file(engine, src, osp.join(args.output, osp.basename(src)), args.bands)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        sys.exit(f'rssr-infer: {error}')
    print(f'{len(files)} scene(s), {engine.tiles_done} tiles of {args.tile}px (overlap {args.overlap}), '
          f'{time.time() - start:.1f} s, peak RSS {peak_rss_mib():.0f} MiB -> {args.output}')


if __name__ == '__main__':
    main()
