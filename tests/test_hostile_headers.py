"""Image headers of every format OpenCV decodes (issue 22): sizes read without decoding, limits checked on them.

Each format is made by OpenCV itself (real files), then its header is edited to claim a huge size, and the
reader must refuse it with ``cv2.imdecode`` replaced by a function that fails the test if it is called.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest

from rssr_apps import inference
from rssr_utils import image_io
from rssr_utils.image_headers import header_format, header_size
from rssr_utils.image_io import ImageError, decode_raw
from tests.helpers.data import call_main


def _image(ext, shape=(37, 53, 3)):
    img = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    if ext in ('.pfm', '.hdr'):
        img = img.astype(np.float32) / 255
    if ext in ('.pgm', '.pbm'):
        img = img[..., 0]
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return bytearray(buf.tobytes())


FORMATS = ['.png', '.jpg', '.bmp', '.tif', '.webp', '.gif', '.ppm', '.pgm', '.pbm', '.pam', '.pfm', '.hdr', '.ras']
FORMATS += ['.jp2', '.avif']


@pytest.mark.parametrize('ext', FORMATS)
def test_22_header_sizes_match_the_decoder_for_every_format_opencv_reads(ext):
    content = bytes(_image(ext))
    decoded = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert header_size(content) == (decoded.shape[1], decoded.shape[0]) == (53, 37)
    if ext == '.jp2':  # the bare JPEG 2000 codestream inside the JP2 box
        stream = _codestream(content)
        assert header_format(stream) == 'JPEG 2000' and header_size(stream) == (53, 37)


def _png(width, height):
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))


def _with(ext, at, fmt, *values, find=None):
    content = _image(ext, (64, 64, 3))
    at += content.find(find) if find else 0
    content[at : at + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    return bytes(content)


def _gif_frame(w, h):
    content = _image('.gif', (64, 64, 3))
    pos = 13 + (3 << ((content[10] & 7) + 1))  # after the global colour table
    while content[pos] == 0x21:  # extension blocks
        pos += 2
        while content[pos]:
            pos += content[pos] + 1
        pos += 1
    content[pos + 5 : pos + 9] = struct.pack('<HH', w, h)  # the first frame's width and height
    return bytes(content)


def _codestream(jp2):
    return jp2[jp2.find(SOC) :]


SOC = b'\xff\x4f\xff\x51'  # JPEG 2000 codestream: start of codestream, then the SIZ marker
W = 60000  # 60000 x 60000 = 3.6e9 pixels, above the default limit of 2**30: about 10 GiB decoded
BOMBS = {
    'GIF screen': lambda: _with('.gif', 6, '<HH', 65535, 65535),
    'GIF frame larger than its screen': lambda: _gif_frame(W, W),
    'PPM': lambda: b'P6\n%d %d\n255\n' % (W, W) + bytes(64),
    'PGM with a comment': lambda: b'P5\n# scanner\n%d\n%d 255\n' % (W, W) + bytes(64),
    'PBM in ASCII': lambda: b'P1 %d %d 0 1 0' % (W, W),
    'PAM': lambda: b'P7\nWIDTH %d\nHEIGHT %d\nDEPTH 3\nMAXVAL 255\nENDHDR\n' % (W, W) + bytes(64),
    'PFM': lambda: b'PF\n%d %d\n-1.0\n' % (W, W) + bytes(64),
    'Radiance HDR': lambda: b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n' % (W, W) + bytes(64),
    'Sun raster': lambda: _with('.ras', 4, '>II', W, W),
    'JPEG 2000': lambda: _with('.jp2', 4, '>II', W, W, find=b'ihdr'),
    'JPEG 2000 codestream': lambda: _codestream(_with('.jp2', 8, '>II', W, W, find=SOC)),
    'AVIF': lambda: _with('.avif', 8, '>II', W, W, find=b'ispe'),
    'WebP VP8X': lambda: b'RIFF\0\0\0\0WEBPVP8X' + struct.pack('<I', 10) + bytes(4) + (W - 1).to_bytes(3, 'little') * 2,
    'BMP top-down': lambda: _with('.bmp', 18, '<ii', W, -W),
    'PNG': lambda: _png(W, W),
}


@pytest.mark.parametrize('name', BOMBS)
def test_22_pixel_limits_are_checked_on_the_header_before_decoding(name, monkeypatch):
    def no_decoding(*args):
        raise AssertionError('decoded before the size check')

    monkeypatch.setattr(image_io.cv2, 'imdecode', no_decoding)
    with pytest.raises(ImageError, match=f'{name}: {W if "GIF screen" not in name else 65535}x'):
        decode_raw(BOMBS[name](), name)


@pytest.mark.parametrize(
    'content, message',
    [
        (b'\x00\x00\x02\x00\x00\x00\x00\x00' + bytes(64), 'not an image format rssr reads'),  # TGA: OpenCV has none
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', 'not an image format rssr reads'),
        (b'\x89PNG\r\n\x1a\n\x00\x00', 'its PNG header cannot be read'),
        (b'\xff\xd8\xff\xda\x00\x08', 'its JPEG header cannot be read'),  # scan data before any frame header
        (b'P6\n# only a comment\n', 'its PNM header cannot be read'),
    ],
    ids=['tga', 'svg', 'png cut in the signature', 'jpeg without a frame header', 'pnm without a size'],
)
def test_22_formats_whose_header_cannot_be_read_are_refused_by_name(content, message, tmp_path):
    path = tmp_path / 'scene.png'
    path.write_bytes(content)
    with pytest.raises(ImageError, match=f'{path}: {message}'):
        image_io.read_image(path)
    proc = call_main(inference.main, path, tmp_path / 'out', '--arch', 'Bicubic', '--quiet')
    assert proc.returncode == 1 and message in proc.stderr and 'Traceback' not in proc.stderr
