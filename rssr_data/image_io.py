"""Reading remote-sensing images: bit depth, band count and broken files handled with clear messages.

Conventions (used by the datasets, the LMDB packer and the LR generator):

* 8-bit images are scaled by 1/255 and 16-bit ones by 1/65535 to float32 in
  [0, 1]: the full range of the file's type, so the scaling is reversible and
  does not depend on the image (a 12-bit sensor stored in 16 bits therefore
  looks dark; stretch it before training if that matters).
* Grey images are repeated to 3 channels.
* Images with other band counts (RGBA, RGB+NIR, multispectral) are refused:
  pick the three RGB bands first (e.g. with ``gdal_translate -b 1 -b 2 -b 3``).
* Arrays are BGR, HWC, as in BasicSR.
"""

import os

import cv2
import numpy as np

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
_SCALE = {np.dtype('uint8'): 255.0, np.dtype('uint16'): 65535.0}


class ImageError(ValueError):
    """An image that cannot be used, with the file and the fix in the message."""


def is_image(path):
    return path.lower().endswith(IMG_EXTENSIONS)


def decode(content, name, to_float=True):
    """Decode encoded image bytes to BGR HWC with 3 channels: float32 in [0, 1], or the file's integers.

    Args:
        content (bytes): Encoded image (PNG, JPEG, TIFF, ...).
        name (str): File or LMDB key, for messages.
        to_float (bool): Scale to float32 in [0, 1] (see the module conventions). Default: True.
    """
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(
            f'{name}: cannot be decoded (corrupt, truncated or not an image); '
            're-export or re-download it, or remove it and its partner from the data set.'
        )
    if img.dtype not in _SCALE:
        raise ImageError(
            f'{name}: pixel type {img.dtype} is not supported (8- or 16-bit integers are); '
            'convert it to 8- or 16-bit first.'
        )
    scale = _SCALE[img.dtype]
    if img.ndim == 2:
        img = img[..., None]
    bands = img.shape[2]
    if bands == 1:
        img = np.repeat(img, 3, axis=2)
    elif bands != 3:
        raise ImageError(
            f'{name}: has {bands} bands; rssr trains on RGB. Keep the three RGB bands '
            '(e.g. gdal_translate -b 1 -b 2 -b 3 in.tif out.tif) or drop the alpha channel.'
        )
    return img.astype(np.float32) / scale if to_float else img


def read_image(path):
    """Read an image file to float32 BGR HWC in [0, 1] (see the module conventions)."""
    try:
        with open(path, 'rb') as f:
            content = f.read()
    except OSError as error:
        raise ImageError(f'{path}: cannot be read ({error.strerror}); check the path and permissions.') from error
    return decode(content, path)


def scan_images(root, recursive=True):
    """Relative paths of the images under ``root`` (class sub-folders included), sorted."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f'Image folder {root} does not exist; check dataroot_gt / dataroot_lq.')
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
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
