"""QGIS Deepness's own code loads and runs our ``--deepness`` exports (FAT and TSFNet) like PyTorch.

Deepness (github.com/PUTvision/qgis-plugin-deepness) is not on PyPI and not
copied here: set ``RSSR_DEEPNESS_SRC`` to a checkout (its root or its ``src``)
and its model wrapper (``Superresolution``) and super-resolution map processor
(``MapProcessorSuperresolution``: batching, the plugin's preprocessing, the
stitching into its uint8 result) run on our files. Only what a plugin gets from
QGIS and GDAL is faked (``qgis.*``, ``osgeo``): minimal modules put in
``sys.modules`` for the test.
"""

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import rssr_patches
from rssr_apps.export import export_model
from rssr_apps.onnx_export import read_onnx_metadata
from rssr_utils.weights import build_model
from tests.helpers.options import TINY_NETWORKS

rssr_patches.import_registries()

SOURCE = os.environ.get('RSSR_DEEPNESS_SRC')
FAT_TINY = dict(type='FAT', upscale=4, embed_dim=16, num_blocks=1, depth=1, num_heads=2)
TILE = 24


class _Rectangle:
    """What Deepness's TileParams does with a QgsRectangle: copy it, read and set its edges."""

    def __init__(self, other=None):
        self.edges = dict(other.edges) if other is not None else dict.fromkeys(('x0', 'x1', 'y0', 'y1'), 0.0)

    def xMinimum(self):
        return self.edges['x0']

    def yMaximum(self):
        return self.edges['y1']

    def setXMinimum(self, value):
        self.edges['x0'] = value

    def setXMaximum(self, value):
        self.edges['x1'] = value

    def setYMinimum(self, value):
        self.edges['y0'] = value

    def setYMaximum(self, value):
        self.edges['y1'] = value


class _Named(type):
    """A QGIS class that Deepness only names (imports, annotations such as ``Qgis.DataType``)."""

    def __getattr__(cls, name):
        return _Named(name, (), {})


class _Task:
    """QgsTask as far as a map processor calls it outside QGIS."""

    def __init__(self, *args):
        pass

    def isCanceled(self):
        return False

    def setProgress(self, progress):
        pass


@pytest.fixture
def deepness(monkeypatch):
    """Deepness's modules, importable with stand-ins for QGIS, Qt and GDAL."""
    if not SOURCE:
        pytest.skip('RSSR_DEEPNESS_SRC (a QGIS Deepness checkout) not set')
    root = Path(SOURCE)
    src = root / 'src' if (root / 'src' / 'deepness').is_dir() else root
    if not (src / 'deepness' / 'processing' / 'models' / 'superresolution.py').is_file():
        pytest.fail(f'RSSR_DEEPNESS_SRC={SOURCE}: no src/deepness/processing/models/superresolution.py there.')
    core = types.ModuleType('qgis.core')
    core.QgsTask, core.QgsRectangle = _Task, _Rectangle
    core.__getattr__ = lambda name: _Named(name, (), {})
    fakes = {
        'qgis': types.ModuleType('qgis'),
        'qgis.core': core,
        'qgis.gui': types.SimpleNamespace(QgsMapCanvas=object),
        'qgis.PyQt': types.ModuleType('qgis.PyQt'),
        'qgis.PyQt.QtCore': types.SimpleNamespace(pyqtSignal=lambda *args: None),
        'osgeo': types.SimpleNamespace(gdal=None, osr=None),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    for name in [n for n in sys.modules if n == 'deepness' or n.startswith('deepness.')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(src))
    import deepness.common.processing_overlap as overlap
    import deepness.common.processing_parameters.map_processing_parameters as mpp
    import deepness.processing.map_processor.map_processor_superresolution as processor
    import deepness.processing.processing_utils as utils
    import deepness.processing.tile_params as tile_params
    from deepness.common.processing_parameters.superresolution_parameters import SuperresolutionParameters
    from deepness.processing.models.superresolution import Superresolution

    return types.SimpleNamespace(
        Superresolution=Superresolution, Parameters=SuperresolutionParameters, processor=processor,
        overlap=overlap, area=mpp.ProcessedAreaType, TileParams=tile_params.TileParams, BoundingBox=utils.BoundingBox,
    )  # fmt: skip


def _process_scene(deepness, model, scene):
    """Deepness's super-resolution processor on an (H, W, 3) uint8 ``scene`` (H, W multiples of the tile)."""
    scale = int(model.get_output_shape()[-1] / model.get_input_shape()[-1])  # as the plugin's dock widget
    params = deepness.Parameters(
        resolution_cm_per_px=model.get_metadata_resolution(), processed_area_type=deepness.area.ENTIRE_LAYER,
        tile_size_px=model.get_metadata_tile_size(), batch_size=3, local_cache=False, input_layer_id='scene',
        mask_layer_id=None, input_channels_mapping=None, model=model, scale_factor=scale, output_scaling=255.0,
        processing_overlap=deepness.overlap.ProcessingOverlap(
            deepness.overlap.ProcessingOverlapOptions.OVERLAP_IN_PERCENT, percentage=model.get_metadata_tiles_overlap()
        ),
    )  # fmt: skip
    run = deepness.processor.MapProcessorSuperresolution.__new__(deepness.processor.MapProcessorSuperresolution)
    # What MapProcessor.__init__ derives from the QGIS layer and extents, for a scene of whole tiles.
    h, w = scene.shape[:2]
    run.params = run.superresolution_parameters = params
    run.model, run.file_handler, run._result_img = model, None, None
    run.stride_px, run.img_size_y_pixels, run.img_size_x_pixels = params.processing_stride_px, h, w
    run.y_bins_number = round((h - params.tile_size_px) / run.stride_px) + 1
    run.x_bins_number = round((w - params.tile_size_px) / run.stride_px) + 1
    run.base_extent_bbox_in_full_image = deepness.BoundingBox(x_min=0, x_max=w, y_min=0, y_max=h)
    tiles = [
        deepness.TileParams(x, y, run.x_bins_number, run.y_bins_number, params, 1.0, _Rectangle())
        for y in range(run.y_bins_number)
        for x in range(run.x_bins_number)
    ]
    side = params.tile_size_px
    run.tiles_generator = lambda: (
        (scene[t.start_pixel_y : t.start_pixel_y + side, t.start_pixel_x : t.start_pixel_x + side], t) for t in tiles
    )
    run._create_rlayers_from_images_for_base_extent = lambda image: None  # writes a GeoTIFF through GDAL for QGIS
    result = run._run()
    assert type(result).__name__ == 'MapProcessingResultSuccess', getattr(result, 'message', result)
    return run.get_result_img()


@pytest.mark.slow  # a FAT and a TSFNet export: minutes of tracing on 2 cores
@pytest.mark.parametrize('network', [FAT_TINY, TINY_NETWORKS['TSFNet']], ids=lambda n: n['type'])
def test_deepness_loads_and_runs_the_export_like_pytorch(deepness, network, tmp_path):
    result = export_model(
        dict(network), str(tmp_path), tile=TILE, overlap=0, deepness=True, resolution_cm=50.0, log=lambda *_: None
    )
    meta = read_onnx_metadata(result['onnx'])
    assert meta['tiles_overlap'] == 0 and 'tiles_overlap 0' in meta['description']
    model = deepness.Superresolution(result['onnx'])
    model.check_loaded_model_outputs()  # square output dims, compared as Deepness compares them
    assert model.get_metadata_model_type() == 'Superresolution'
    assert (model.get_metadata_tile_size(), model.get_metadata_tiles_overlap()) == (TILE, 0)
    assert model.get_metadata_resolution() == 50.0 and model.get_model_batch_size() is None
    assert list(model.get_input_shape()[1:]) == [3, TILE, TILE]
    assert list(model.get_output_shape()[1:]) == [3, 4 * TILE, 4 * TILE]

    net = build_model(None, result['safetensors'])
    scene = np.random.default_rng(0).integers(0, 256, (2 * TILE, 3 * TILE, 3), dtype=np.uint8)
    lr = torch.from_numpy(scene).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        tiles = [lr[..., y : y + TILE, x : x + TILE] for y in (0, TILE) for x in (0, TILE, 2 * TILE)]
        expected = torch.cat([net(t).clamp(0, 1) for t in tiles]).numpy()
    # One batch of tiles through the wrapper (its /255 preprocessing, NHWC -> NCHW): within 1e-3 in [0, 1].
    batch = np.stack([scene[y : y + TILE, x : x + TILE] for y in (0, TILE) for x in (0, TILE, 2 * TILE)])
    assert np.abs(model.process(batch) - expected).max() <= 1e-3
    # The processor's stitched uint8 scene: each tile scaled by 255 into its slot (truncated, as numpy casts).
    image = _process_scene(deepness, model, scene)
    assert image.shape == (8 * TILE, 12 * TILE, 3) and image.dtype == np.uint8
    for index, (y, x) in enumerate((y, x) for y in (0, TILE) for x in (0, TILE, 2 * TILE)):
        slot = image[4 * y : 4 * (y + TILE), 4 * x : 4 * (x + TILE)].astype(int)
        truth = (expected[index].transpose(1, 2, 0) * 255).astype(int)
        assert np.abs(slot - truth).max() <= 1, (index, y, x)


def test_deepness_export_refuses_what_deepness_cannot_use(tmp_path):
    for kwargs, message in (
        (dict(resolution_cm=None), '--resolution-cm'),
        (dict(resolution_cm=50.0, tile=8), '--tile 8'),  # FAT needs 12
        (dict(resolution_cm=50.0, overlap=4), 'Deepness needs 0'),
    ):
        with pytest.raises(ValueError, match=message):
            export_model(dict(FAT_TINY), str(tmp_path / 'x'), deepness=True, **{'tile': TILE, **kwargs})
        assert not (tmp_path / 'x').exists()
