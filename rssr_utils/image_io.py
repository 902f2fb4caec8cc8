"""The one image reader: bit depth, band count, size limits and broken files handled with clear messages.

Conventions (used by the datasets, the LMDB packer, the LR generator, sub-image
extraction, the benchmark sets and scene inference):

* A file is read whole, refused when it is empty, and its header's declared
  size is checked against ``max_pixels`` (default :data:`MAX_PIXELS`, OpenCV's
  own decoding limit) *before* anything is decoded, so a 69-byte PNG claiming
  100000x100000 pixels costs nothing. The header is parsed here for PNG, JPEG,
  BMP, TIFF (classic and BigTIFF) and WebP: OpenCV has no header-only API.
* A header that parses but pixel data that does not decode is reported as
  truncated or corrupt, with the declared size.
* 8-bit images are scaled by 1/255 and 16-bit ones by 1/65535 to float32 in
  [0, 1]: the full range of the file's type, so the scaling is reversible and
  does not depend on the image (a 12-bit sensor stored in 16 bits therefore
  looks dark; stretch it before training if that matters).
* Grey images are repeated to 3 channels.
* Images with other band counts (RGBA, RGB+NIR, multispectral) are refused:
  pick the three RGB bands first (e.g. with ``gdal_translate -b 1 -b 2 -b 3``).
* Arrays are BGR, HWC, as in BasicSR.
* Every error is an :class:`ImageError` whose message starts with the file
  (or LMDB key) and says what to do.
"""

import os
import struct

import cv2
import numpy as np

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
_SCALE = {np.dtype('uint8'): 255.0, np.dtype('uint16'): 65535.0}
MAX_PIXELS = 2**30  # OpenCV's default CV_IO_MAX_IMAGE_PIXELS: files it decoded before are not refused now


class ImageError(ValueError):
    """An image that cannot be used, with the file and the fix in the message."""


def is_image(path):
    return path.lower().endswith(IMG_EXTENSIONS)


def _png_size(b):
    if b[12:16] == b'IHDR' and len(b) >= 24:
        return struct.unpack('>II', b[16:24])
    return None


def _jpeg_size(b):
    pos = 2
    while pos + 4 <= len(b):
        if b[pos] != 0xFF:
            return None
        marker = b[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            pos += 2
            continue
        if marker == 0xDA or marker == 0xD9:  # scan data or end before any frame header
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn: precision, height, width
            if pos + 9 > len(b):
                return None
            height, width = struct.unpack('>HH', b[pos + 5 : pos + 9])
            return width, height
        pos += 2 + struct.unpack('>H', b[pos + 2 : pos + 4])[0]
    return None


def _bmp_size(b):
    if len(b) < 26:
        return None
    if struct.unpack('<I', b[14:18])[0] == 12:  # BITMAPCOREHEADER
        return struct.unpack('<HH', b[18:22])
    width, height = struct.unpack('<ii', b[18:26])
    return abs(width), abs(height)  # negative height: top-down rows


def _tiff_size(b):
    end = '<' if b[:2] == b'II' else '>'
    big = struct.unpack(end + 'H', b[2:4])[0] == 43
    try:
        if big:
            (ifd,) = struct.unpack(end + 'Q', b[8:16])
            (count,) = struct.unpack(end + 'Q', b[ifd : ifd + 8])
            entry, first, size = 20, ifd + 8, 8
        else:
            (ifd,) = struct.unpack(end + 'I', b[4:8])
            (count,) = struct.unpack(end + 'H', b[ifd : ifd + 2])
            entry, first, size = 12, ifd + 2, 4
        found = {}
        for i in range(min(count, 4096)):
            at = first + i * entry
            tag, kind = struct.unpack(end + 'HH', b[at : at + 4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8, stored inline
                fmt = {3: 'H', 4: 'I', 16: 'Q'}.get(kind)
                if fmt is None:
                    return None
                value_at = at + 4 + size
                found[tag] = struct.unpack(end + fmt, b[value_at : value_at + struct.calcsize(fmt)])[0]
            if len(found) == 2:
                return found[256], found[257]
    except struct.error:  # the header points past the end: leave the verdict to the decoder
        return None
    return None


def _webp_size(b):
    chunk = b[12:16]
    if chunk == b'VP8 ' and len(b) >= 30:
        width, height = struct.unpack('<HH', b[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b'VP8L' and len(b) >= 25:
        bits = int.from_bytes(b[21:25], 'little')
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b'VP8X' and len(b) >= 30:
        return 1 + int.from_bytes(b[24:27], 'little'), 1 + int.from_bytes(b[27:30], 'little')
    return None


def header_size(content):
    """(width, height) declared by the header of an encoded image, without decoding it.

    Args:
        content (bytes): The whole file (a TIFF's first directory may be anywhere).

    Returns:
        tuple[int, int] | None: The declared size, or None for formats (or damaged
        headers) this parser does not know; the decoder then decides.
    """
    b = bytes(content)
    if b.startswith(b'\x89PNG\r\n\x1a\n'):
        return _png_size(b)
    if b.startswith(b'\xff\xd8'):
        return _jpeg_size(b)
    if b.startswith(b'BM'):
        return _bmp_size(b)
    if b[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'):
        return _tiff_size(b)
    if b[:4] == b'RIFF' and b[8:12] == b'WEBP':
        return _webp_size(b)
    return None


def check_size(name, width, height, max_pixels=MAX_PIXELS, bytes_per_pixel=None):
    """Refuse an image whose declared size is empty or above ``max_pixels``, naming ``name``."""
    if width <= 0 or height <= 0:
        raise ImageError(f'{name}: declares a {width}x{height} image; the file is corrupt, re-export it.')
    if max_pixels and width * height > max_pixels:
        need = f' (about {width * height * bytes_per_pixel / 2**30:.1f} GiB to read)' if bytes_per_pixel else ''
        raise ImageError(
            f'{name}: {width}x{height} = {width * height} pixels{need} is above the limit of {max_pixels} '
            '(--max-pixels); cut it into smaller files (e.g. gdal_translate -srcwin), or raise --max-pixels if '
            'memory allows (beyond 2**30, OpenCV also needs OPENCV_IO_MAX_IMAGE_PIXELS for PNG/JPEG).'
        )


def add_max_pixels_argument(parser, what='images'):
    """The ``--max-pixels`` option every command that reads images takes (checked on the header)."""
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=MAX_PIXELS,
        help=f'refuse {what} above this many pixels, checked on the header before decoding (default {MAX_PIXELS})',
    )


def read_bytes(path):
    """The bytes of an image file; a missing, unreadable or empty file is an :class:`ImageError` naming it."""
    try:
        with open(path, 'rb') as f:
            content = f.read()
    except OSError as error:
        raise ImageError(f'{path}: cannot be read ({error.strerror}); check the path and permissions.') from error
    if not content:
        raise ImageError(f'{path}: is empty (0 bytes); re-export or re-download it, or remove it.')
    return content


def decode_raw(content, name, max_pixels=MAX_PIXELS):
    """Decode encoded image bytes as stored (``cv2.IMREAD_UNCHANGED``): no band or type policy.

    Args:
        content (bytes): Encoded image (PNG, JPEG, TIFF, ...).
        name (str): File or LMDB key, for messages.
        max_pixels (int): Largest width x height accepted, checked on the header first.

    Returns:
        np.ndarray: (H, W) or (H, W, C), BGR(A), the file's data type.
    """
    if len(content) == 0:
        raise ImageError(f'{name}: is empty (0 bytes); re-export or re-download it, or remove it.')
    size = header_size(content)
    if size is not None:
        check_size(name, *size, max_pixels)
    try:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # e.g. above OpenCV's own pixel limit
        raise ImageError(f'{name}: cannot be decoded ({str(error).strip().splitlines()[-1]}).') from error
    if img is None:
        declared = f' (its header declares {size[0]}x{size[1]} pixels)' if size else ''
        raise ImageError(
            f'{name}: cannot be decoded: truncated, corrupt or not an image{declared}; '
            're-export or re-download it, or remove it and its partner from the data set.'
        )
    if max_pixels and img.shape[0] * img.shape[1] > max_pixels:  # formats whose header we do not parse
        check_size(name, img.shape[1], img.shape[0], max_pixels)
    return img


def check_bands(img, name):
    """Refuse pixel types other than 8/16-bit and band counts other than 1 or 3 (see the module conventions)."""
    if img.dtype not in _SCALE:
        raise ImageError(
            f'{name}: pixel type {img.dtype} is not supported (8- or 16-bit integers are); '
            'convert it to 8- or 16-bit first.'
        )
    bands = 1 if img.ndim == 2 else img.shape[2]
    if bands not in (1, 3):
        raise ImageError(
            f'{name}: has {bands} bands; rssr trains on RGB. Keep the three RGB bands '
            '(e.g. gdal_translate -b 1 -b 2 -b 3 in.tif out.tif) or drop the alpha channel.'
        )
    return img


def decode(content, name, to_float=True, max_pixels=MAX_PIXELS):
    """Decode encoded image bytes to BGR HWC with 3 channels: float32 in [0, 1], or the file's integers.

    Args:
        content (bytes): Encoded image (PNG, JPEG, TIFF, ...).
        name (str): File or LMDB key, for messages.
        to_float (bool): Scale to float32 in [0, 1] (see the module conventions). Default: True.
        max_pixels (int): Largest width x height accepted. Default: :data:`MAX_PIXELS`.
    """
    img = check_bands(decode_raw(content, name, max_pixels), name)
    scale = _SCALE[img.dtype]
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img.astype(np.float32) / scale if to_float else img


def read_image(path, to_float=True, max_pixels=MAX_PIXELS):
    """Read an image file to BGR HWC with 3 channels (see :func:`decode` and the module conventions)."""
    return decode(read_bytes(path), str(path), to_float, max_pixels)


def read_raw(path, max_pixels=MAX_PIXELS):
    """Read an 8/16-bit, 1- or 3-band image file as stored (no grey-to-RGB, no scaling), validated."""
    return check_bands(decode_raw(read_bytes(path), str(path), max_pixels), str(path))


def write_image(path, img):
    """Write ``img`` (BGR HWC integers) to ``path`` atomically (temporary name, then rename)."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    ext = os.path.splitext(path)[1]
    tmp = f'{path}.{os.getpid()}.tmp{ext}'
    if not cv2.imwrite(tmp, img):
        raise OSError(f'cannot write {tmp} ({img.dtype}); check free space, permissions and that {ext} holds it.')
    os.replace(tmp, path)


def path_key(rel):
    """An image's key: its relative path without extension, '/'-separated (the same for folders and LMDBs)."""
    return os.path.splitext(rel)[0].replace(os.sep, '/')


def safe_relpath(rel, source):
    """Check that a relative path taken from a file (split list, meta_info) stays below its root.

    Args:
        rel (str): The path as written.
        source (str): Where it came from, for the message.

    Returns:
        str: ``rel`` normalised (``a/./b`` -> ``a/b``).
    """
    norm = os.path.normpath(rel)
    if not rel or os.path.isabs(rel) or norm == '..' or norm.startswith('..' + os.sep) or '\x00' in rel:
        raise ValueError(
            f'{source}: entry {rel!r} is not a relative path inside the data folder '
            '(absolute paths and ".." are refused); fix the list.'
        )
    return norm


def scan_images(root, recursive=True):
    """Relative paths of the images under ``root`` (class sub-folders included), sorted."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f'Image folder {root} does not exist; check dataroot_gt / dataroot_lq.')
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked folders are not followed: no loops
        dirnames.sort()
        found += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames if is_image(f)]
        if not recursive:
            break
    if not found:
        raise FileNotFoundError(
            f'No images ({", ".join(IMG_EXTENSIONS)}) under {root}; '
            'check the folder, or that the download was extracted.'
        )
    return sorted(found)


# --- N-band images: multispectral, any data type, bands in the file's order -----------------------------------------
NPY_MAGIC = b'\x93NUMPY'
MAX_BANDS = 16
_TIFF_MAGIC = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')


def _decode_tiff_bands(content, name):
    """(H, W, C) of a TIFF through rasterio (GeoTIFFs of any band count and type)."""
    import rasterio
    from rasterio.io import MemoryFile

    try:
        with rasterio.Env(), MemoryFile(bytes(content)) as mem, mem.open() as src:
            return np.ascontiguousarray(src.read().transpose(1, 2, 0))
    except rasterio.errors.RasterioError as error:
        raise ImageError(f'{name}: cannot be decoded as a TIFF ({error}); re-export it.') from None


def decode_bands(content, name, max_pixels=MAX_PIXELS):
    """Decode an image of 1 to 16 bands as stored: (H, W, C) in the file's type, band 1 first (as GDAL numbers them).

    Read by type: ``.npy`` arrays (N-band LMDB values, no pickles) with numpy; TIFFs (GeoTIFFs of any band count
    and type) with rasterio; other formats (16-bit PNG, ...) with OpenCV, up to 4 bands, its BGR(A) order
    turned back into the file's RGB(A). No scaling: a :class:`rssr_utils.radiometry.Radiometry` maps the values.

    Args:
        content (bytes): The encoded image.
        name (str): File or LMDB key, for messages.
        max_pixels (int): Largest width x height accepted, checked on the header first.
    """
    if len(content) == 0:
        raise ImageError(f'{name}: is empty (0 bytes); re-export or re-download it, or remove it.')
    head = bytes(content[:8])
    if head.startswith(NPY_MAGIC):
        import io

        try:
            img = np.load(io.BytesIO(content), allow_pickle=False)
        except ValueError as error:
            raise ImageError(f'{name}: not a readable .npy array ({error}); rebuild the LMDB.') from None
        if img.ndim in (2, 3):
            check_size(name, img.shape[1], img.shape[0], max_pixels)
    elif head[:4] in _TIFF_MAGIC:
        size = header_size(content)
        if size is not None:
            check_size(name, *size, max_pixels)
        img = _decode_tiff_bands(content, name)
    else:
        img = decode_raw(content, name, max_pixels)
        if img.ndim == 3 and img.shape[2] in (3, 4):
            img = img[..., [2, 1, 0, 3][: img.shape[2]]]
    img = img[..., None] if img.ndim == 2 else img
    if img.ndim != 3 or not 1 <= img.shape[2] <= MAX_BANDS or img.dtype.kind not in 'uif':
        raise ImageError(
            f'{name}: holds a {img.dtype} array of shape {img.shape}; an image has 1 to {MAX_BANDS} bands of '
            'integers or floats.'
        )
    return img


def read_bands(path, max_pixels=MAX_PIXELS):
    """Read an image file of 1 to 16 bands as stored (see :func:`decode_bands`)."""
    return decode_bands(read_bytes(path), str(path), max_pixels)


def select_bands(img, bands, name):
    """The 1-based ``bands`` of an (H, W, C) image, in that order (None: all); a missing band is named."""
    if bands is None:
        return img
    bad = [b for b in bands if not 1 <= b <= img.shape[2]]
    if bad:
        raise ImageError(f'{name}: bands {bad} do not exist; it has bands 1 to {img.shape[2]} (1-based, as GDAL).')
    return np.ascontiguousarray(img[..., [b - 1 for b in bands]])


def encode_npy(img):
    """Lossless bytes of an array of any type and band count (``.npy``; :func:`decode_bands` reads them)."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(img), allow_pickle=False)
    return buf.getvalue()
