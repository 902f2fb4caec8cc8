"""A small real-image SR data set that needs no download, for the built-in demo and tests.

The images are real, and all ship with packages rssr already depends on:

* terrain: the USGS elevation model of the Jacksboro fault (Tennessee) in
  matplotlib's sample data (``jacksboro_fault_dem.npz``, 344x403 cells of
  3 arc-seconds), rendered as a hill-shaded, colour-relief map, the way
  elevation products are usually looked at. Its left part is used for
  training and its right part for validation, so validation pixels are unseen.
* ground textures: scikit-image's photographs ``grass``, ``gravel`` and
  ``brick`` (512x512, grey), training only.

LR images are made from the HR ones with BasicSR's MATLAB-kernel bicubic
(``imresize``), the same degradation as the papers' data sets.
"""

import os
from os import path as osp

import cv2
import numpy as np

from .degradations import mod_crop
from .prepare import save_lr

VAL_COLUMNS = 96  # width of the terrain strip held out for validation (HR pixels)


def terrain_image():
    """Hill-shaded colour relief of the Jacksboro fault DEM: uint8 RGB, (344, 403, 3)."""
    from matplotlib import cbook, colormaps
    from matplotlib.colors import LightSource

    with np.load(cbook.get_sample_data('jacksboro_fault_dem.npz', asfileobj=False)) as dem:
        elevation = dem['elevation'].astype(np.float64)
        dx, dy = float(dem['dx']), float(dem['dy'])
    # Cells are in degrees; ~111 km per degree gives a true vertical exaggeration of 1.
    shaded = LightSource(azdeg=315, altdeg=45).shade(
        elevation, cmap=colormaps['gist_earth'], blend_mode='overlay', vert_exag=1, dx=dx * 111e3, dy=dy * 111e3
    )
    return np.round(shaded[..., :3] * 255).astype(np.uint8)


def texture_images():
    """scikit-image's real ground-texture photographs as uint8 RGB arrays."""
    from skimage import data

    return {name: np.repeat(getattr(data, name)()[..., None], 3, axis=2) for name in ('grass', 'gravel', 'brick')}


def _write_pair(root, name, hr_rgb, scale):
    hr = cv2.cvtColor(mod_crop(hr_rgb, scale), cv2.COLOR_RGB2BGR)
    os.makedirs(osp.join(root, 'HR'), exist_ok=True)
    cv2.imwrite(osp.join(root, 'HR', f'{name}.png'), hr)
    save_lr(hr, osp.join(root, f'LR_x{scale}', f'{name}.png'), scale)


def make_demo_dataset(root, scale=4):
    """Write ``root/{train,val}/{HR,LR_x<scale>}/*.png`` and return ``root``.

    Nothing is rewritten when the folders are already complete.
    """
    marker = osp.join(root, f'.complete_x{scale}')
    if osp.isfile(marker):
        return root
    terrain = terrain_image()
    split = terrain.shape[1] - VAL_COLUMNS
    _write_pair(osp.join(root, 'train'), 'terrain_west', terrain[:, :split], scale)
    for name, img in texture_images().items():
        _write_pair(osp.join(root, 'train'), name, img, scale)
    _write_pair(osp.join(root, 'val'), 'terrain_east', terrain[:, split:], scale)
    with open(marker, 'w'):
        pass
    return root
