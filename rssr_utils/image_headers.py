"""Image sizes read from the header bytes, without decoding: every format OpenCV's ``imdecode`` reads.

OpenCV has no header-only API, and decoding a file whose header claims
100000x100000 pixels allocates that much before any check can run. So the
formats OpenCV decodes are recognised by their signature here, and their
declared size read from the header: PNG (and APNG), JPEG, BMP, TIFF and
BigTIFF, WebP, GIF (the screen and every frame), PBM/PGM/PPM/PAM/PFM,
Radiance HDR, Sun raster, JPEG 2000 (JP2 and raw codestreams) and AVIF/HEIF.
:mod:`rssr_utils.image_io` refuses files of any other format, and files whose
header cannot be read, before decoding.
"""

import re
import struct


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


def _gif_size(b):
    """The largest of the logical screen and every frame's extent (OpenCV allocates the screen and each frame)."""
    if len(b) < 13:
        return None
    width, height = struct.unpack('<HH', b[6:10])
    pos = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    while pos < len(b):
        block = b[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor: left, top, width, height, flags, local table, LZW size
            if pos + 10 > len(b):
                return None
            left, top, w, h = struct.unpack('<HHHH', b[pos + 1 : pos + 9])
            width, height = max(width, left + w), max(height, top + h)
            flags = b[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        else:
            return None  # not a block start: damaged
        while pos < len(b) and b[pos]:  # data sub-blocks, each prefixed by its length
            pos += b[pos] + 1
        pos += 1
    return width, height


_PNM_TOKEN = re.compile(rb'(?:\s|#[^\n]*\n)*(\d+)')


def _pnm_size(b):
    """P1-P6 and PF/Pf: width and height are the first two numbers after the magic (comments skipped)."""
    first = _PNM_TOKEN.match(b, 2)
    second = first and _PNM_TOKEN.match(b, first.end())
    return (int(first.group(1)), int(second.group(1))) if second else None


def _pam_size(b):
    head = b[: b.find(b'ENDHDR')] if b'ENDHDR' in b[:4096] else b[:4096]
    width = re.search(rb'\nWIDTH\s+(\d+)', head)
    height = re.search(rb'\nHEIGHT\s+(\d+)', head)
    return (int(width.group(1)), int(height.group(1))) if width and height else None


def _hdr_size(b):
    """Radiance: the resolution line after the header's empty line, e.g. ``-Y 480 +X 640``."""
    end = b.find(b'\n\n', 0, 65536)
    found = end >= 0 and re.match(rb'\s*([-+][XY]) +(\d+) +([-+][XY]) +(\d+)', b[end + 2 : end + 80])
    if not found:
        return None
    first, second = int(found.group(2)), int(found.group(4))
    return (second, first) if found.group(1)[1:] == b'Y' else (first, second)


def _sunras_size(b):
    return struct.unpack('>II', b[4:12]) if len(b) >= 12 else None


def _jp2_size(b):
    if b.startswith(b'\xff\x4f\xff\x51'):  # raw codestream: SIZ right after SOC
        if len(b) < 24:
            return None
        xsiz, ysiz, xo, yo = struct.unpack('>IIII', b[8:24])  # after the marker, Lsiz and Rsiz
        return xsiz - xo, ysiz - yo
    at = b.find(b'ihdr', 0, 65536)  # JP2 header box: height, width
    if at < 0 or at + 12 > len(b):
        return None
    height, width = struct.unpack('>II', b[at + 4 : at + 12])
    return width, height


def _isobmff_size(b):
    """AVIF/HEIF: the largest ``ispe`` (image spatial extents) property of any item (grids included)."""
    sizes = []
    at = b.find(b'ispe', 0, 1 << 20)
    while at >= 0 and at + 16 <= len(b):
        sizes.append(struct.unpack('>II', b[at + 8 : at + 16]))
        at = b.find(b'ispe', at + 4, 1 << 20)
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def _is_isobmff_image(b):
    return b[4:8] == b'ftyp' and any(brand in b[8:64] for brand in (b'avif', b'avis', b'heic', b'heix', b'mif1'))


# (name, signature test, size parser), in the order OpenCV tries its decoders.
FORMATS = (
    ('PNG', lambda b: b.startswith(b'\x89PNG\r\n\x1a\n'), _png_size),
    ('JPEG', lambda b: b.startswith(b'\xff\xd8'), _jpeg_size),
    ('BMP', lambda b: b.startswith(b'BM'), _bmp_size),
    ('TIFF', lambda b: b[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'), _tiff_size),
    ('WebP', lambda b: b[:4] == b'RIFF' and b[8:12] == b'WEBP', _webp_size),
    ('GIF', lambda b: b[:6] in (b'GIF87a', b'GIF89a'), _gif_size),
    ('PNM', lambda b: len(b) > 2 and b[:1] == b'P' and b[1:2] in b'123456' and b[2:3].isspace(), _pnm_size),
    ('PAM', lambda b: b.startswith(b'P7') and b[2:3].isspace(), _pam_size),
    ('PFM', lambda b: b[:2] in (b'PF', b'Pf') and b[2:3].isspace(), _pnm_size),
    ('Radiance HDR', lambda b: b.startswith((b'#?RADIANCE', b'#?RGBE')), _hdr_size),
    ('Sun raster', lambda b: b.startswith(b'\x59\xa6\x6a\x95'), _sunras_size),
    ('JPEG 2000', lambda b: b.startswith((b'\x00\x00\x00\x0cjP  \r\n\x87\n', b'\xff\x4f\xff\x51')), _jp2_size),
    ('AVIF/HEIF', _is_isobmff_image, _isobmff_size),
)
FORMAT_NAMES = ', '.join(name for name, _, _ in FORMATS)


def header_format(content):
    """The name of the format ``content`` starts like (see :data:`FORMATS`), or None."""
    b = bytes(content[:64])
    return next((name for name, test, _ in FORMATS if test(b)), None)


def header_size(content):
    """(width, height) declared by the header of an encoded image, without decoding it.

    Args:
        content (bytes): The whole file (a TIFF's first directory, a GIF's frames may be anywhere).

    Returns:
        tuple[int, int] | None: The declared size, or None for other formats and
        damaged headers (which :mod:`rssr_utils.image_io` refuses before decoding).
    """
    b = bytes(content)
    for _, test, parse in FORMATS:
        if test(b[:64]):
            try:
                return parse(b)
            except (struct.error, IndexError, ValueError):  # the header points past the end
                return None
    return None
