"""Overlapping tiles and their blend weights (:class:`TiledSR`): scene inference and tiled validation.

Tiles of ``tile`` LR pixels overlap by ``overlap``. A tile's output gets
weight 0 within ``overlap // 4`` LR pixels of an inner tile edge (where the
network saw padding instead of neighbours), ramps linearly to 1 across the
rest of the overlap, and the weights are normalised to sum to 1 at every
pixel; the result equals a whole-image pass for networks whose receptive-field
radius is at most ``overlap // 4`` LR pixels. ``overlap=0`` is the official
TSFNet block evaluation: tiles side by side, the last tile of a row or column
moved back inside the scene and overwriting its neighbour.

Memory: the LR scene stays in its own data type; the network sees one batch of
tiles at a time; outputs are accumulated in one float32 band of ``tile*scale``
rows across the output width, and finished rows are handed on.
"""

import numpy as np
import torch


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

    The image may be a NumPy array (scene inference: outputs accumulate on the
    CPU as NumPy float32) or a torch tensor on any device (validation in
    :class:`rssr_model.rssr_model.RSSRModel`: outputs accumulate on the
    tensor's device and stay tensors).

    Args:
        net (callable): Maps a (B, C, h, w) tensor in [0, 1] to (B, C, h*scale, w*scale): a PyTorch
            network, or :class:`~rssr_apps.inference.onnx.OnnxSR` (onnxruntime; CPU tensors in and out).
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
    def _forward(self, x):
        """(B, C, h, w) float32 tensor in [0, 1] -> (B, C, h*scale, w*scale) float32 tensor on ``self.device``."""
        x = x.to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            if not self.ensemble:
                return self.net(x).float()
            out = 0
            for k in range(4):
                for flip in (False, True):
                    t = torch.rot90(x, k, (2, 3))
                    t = t.flip(3) if flip else t
                    y = self.net(t).float()
                    y = y.flip(3) if flip else y
                    out = out + torch.rot90(y, -k, (2, 3))
            return out / 8

    @staticmethod
    def _tiles(img, y, th, xs, tw):
        """(len(xs), C, th, tw) float32 tensor of the tiles at row ``y`` and columns ``xs``, on ``img``'s device."""
        if torch.is_tensor(img):
            return torch.stack([img[:, y : y + th, x : x + tw] for x in xs]).float()
        return torch.from_numpy(np.stack([img[:, y : y + th, x : x + tw] for x in xs]).astype(np.float32))

    def rows(self, img, offset=0.0, span=1.0, progress=None, clip=True):
        """Super-resolve ``img`` band by band.

        Args:
            img (np.ndarray | Tensor): (C, H, W) of any numeric type; ``(img - offset) / span`` is the
                network input in [0, 1]. Tiles are converted one at a time.
            offset (float): Value mapped to 0. Default: 0.
            span (float): Value range mapped to [0, 1]. Default: 1.
            progress (callable, optional): Called with the number of tiles after each forward.
            clip (bool): Clamp the network input to [0, 1] and replace NaN/inf by 0 (stretched values).
                False: ``img`` already holds finite model values (a radiometry's), passed on as they are.
                Default: True.

        Yields:
            (int, np.ndarray | Tensor): Output row of the first row, and (C, n, W*scale) float32 rows,
            top to bottom, in the network's [0, 1] scale: NumPy for a NumPy ``img``, else a tensor
            on ``img``'s device. The rows are a view of the accumulator, valid (and free to modify)
            until the next iteration.
        """
        c, h, w = img.shape
        floating = img.is_floating_point() if torch.is_tensor(img) else np.issubdtype(img.dtype, np.floating)
        s = self.scale
        th, tw, ys, xs = self.grid(h, w)
        shape = (c, th * s, w * s)  # output rows [top, top + th*s)
        # The accumulator and the blending arithmetic stay in the input's library: NumPy on the CPU for
        # scenes (single-threaded, calloc'd pages), torch on the input's device for tensors.
        if torch.is_tensor(img):
            acc = torch.zeros(shape, device=img.device)
            weights, to_acc = (lambda v: torch.from_numpy(v).to(img.device)), (lambda t: t.to(img.device))
        else:
            acc = np.zeros(shape, np.float32)
            weights, to_acc = (lambda v: v), (lambda t: t.cpu().numpy())
        wys = [weights(v) for v in blend_weights(ys, th, s, self.overlap)]
        wxs = [weights(v) for v in blend_weights(xs, tw, s, self.overlap)]
        top = 0
        for y, wy in zip(ys, wys):
            shift = y * s - top
            if shift:  # rows above this tile row are final
                yield top, acc[:, :shift]  # a view: the consumer is done with it when we resume
                keep = acc.shape[1] - shift
                for i in range(0, keep, shift):  # move the open rows up in chunks that do not overlap: no temporary
                    j = min(i + shift, keep)
                    acc[:, i:j] = acc[:, i + shift : j + shift]
                acc[:, keep:] = 0
                top = y * s
            for j0 in range(0, len(xs), self.batch_size):
                chunk = range(j0, min(j0 + self.batch_size, len(xs)))
                tiles = self._tiles(img, y, th, [xs[j] for j in chunk], tw)
                if clip and ((offset, span) != (0.0, 1.0) or floating):
                    # Only nodata lies outside [0, 1]: clipped; NaN/inf holes become 0, never reaching the network.
                    tiles = ((tiles - offset) / span).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).clamp(0, 1)
                for j, tile_out in zip(chunk, to_acc(self._forward(tiles))):
                    acc[:, :, xs[j] * s : (xs[j] + tw) * s] += tile_out * (wy[:, None] * wxs[j][None, :])
                self.tiles_done += len(chunk)
                if progress:
                    progress(len(chunk))
        yield top, acc

    def __call__(self, img, offset=0.0, span=1.0):
        """img: (C, H, W) -> (C, H*scale, W*scale) float32 in the network's [0, 1] scale (NumPy or tensor, as img)."""
        if torch.is_tensor(img):
            return torch.cat([rows.clone() for _, rows in self.rows(img, offset, span)], dim=1)
        return np.concatenate([rows.copy() for _, rows in self.rows(img, offset, span)], axis=1)
