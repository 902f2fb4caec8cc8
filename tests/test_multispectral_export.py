"""rssr-export records bands and radiometry (sidecar and ONNX metadata); rssr-infer and build_model read them back."""

import json

import numpy as np
import pytest
import torch
import yaml

import rssr_patches
from rssr_apps.export import main as export_main
from rssr_apps.inference import main as infer_main
from rssr_apps.onnx_export import read_onnx_metadata
from rssr_utils.radiometry import Radiometry, RadiometryError
from rssr_utils.weights import build_model, sidecar_bands

rasterio = pytest.importorskip('rasterio')
rssr_patches.import_registries()

NETWORK = dict(type='MSRResNet', num_in_ch=4, num_out_ch=4, num_feat=8, num_block=1, upscale=2)
RADIOMETRY = {'profile': 'sentinel2_l2a', 'band_names': ['B2', 'B3', 'B4', 'B8']}


def write_option_file(path, radiometry=RADIOMETRY, bands=(1, 2, 3, 4)):
    opt = {
        'name': 'msrresnet_s2',
        'model_type': 'RSSRModel',
        'scale': 2,
        'num_gpu': 0,
        'radiometry': radiometry,
        'datasets': {'val': {'name': 'val', 'type': 'RSSceneDataset', 'bands': list(bands)}},
        'network_g': NETWORK,
        'path': {},
    }
    path.write_text(yaml.safe_dump(opt))
    return path


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """One 4-band MSRResNet exported from an option file (safetensors, sidecar, ONNX)."""
    root = tmp_path_factory.mktemp('export')
    torch.manual_seed(1)
    net = build_model(NETWORK)
    torch.save({'params': net.state_dict()}, root / 'net.pth')
    opt = write_option_file(root / 'opt.yml')
    export_main(['-opt', str(opt), '--weights', str(root / 'net.pth'), '--output', str(root / 'model')])
    return root


def test_sidecar_and_onnx_metadata_carry_bands_and_radiometry(exported):
    expected = Radiometry.resolve(RADIOMETRY)
    sidecar = json.loads((exported / 'model' / 'model.json').read_text())
    assert sidecar['bands'] == [1, 2, 3, 4] and Radiometry.resolve(sidecar['radiometry']) == expected
    assert sidecar['radiometry']['band_names'] == ['B2', 'B3', 'B4', 'B8']
    metadata = read_onnx_metadata(str(exported / 'model' / 'model.onnx'))
    assert metadata['bands'] == [1, 2, 3, 4] and Radiometry.resolve(metadata['radiometry']) == expected
    bands, radiometry = sidecar_bands(exported / 'model' / 'model.safetensors')
    assert bands == [1, 2, 3, 4] and radiometry == expected


def test_infer_reads_the_radiometry_back_from_sidecar_and_onnx(exported, tmp_path):
    from rssr_data.synthetic import write_scene

    src = write_scene(str(tmp_path / 'scene.tif'), (40, 52), seed=4, nodata_fraction=0.2)
    common = ['--tile', '24', '--overlap', '8', '--quiet']
    model = exported / 'model'
    infer_main([src, str(tmp_path / 'st'), '--weights', str(model / 'model.safetensors'), *common])
    infer_main([src, str(tmp_path / 'onnx'), '--onnx', str(model / 'model.onnx'), *common])
    infer_main(
        [src, str(tmp_path / 'opt'), '-opt', str(exported / 'opt.yml'), '--weights', str(exported / 'net.pth'), *common]
    )
    outputs = []
    for name in ('st', 'onnx', 'opt'):
        with rasterio.open(tmp_path / name / 'scene.tif') as out:
            assert out.count == 4 and out.dtypes == ('uint16',) * 4 and out.nodata == 0
            assert json.loads(out.tags()['RSSR_RADIOMETRY'])['name'] == 'sentinel2_l2a'
            outputs.append(out.read().astype(int))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1  # onnxruntime vs PyTorch, in DN
    assert np.array_equal(outputs[0], outputs[2])


def test_bad_band_counts_and_sidecar_radiometry_are_named(exported, tmp_path):
    opt = write_option_file(tmp_path / 'opt.yml', bands=(1, 2, 3))
    with pytest.raises(SystemExit, match=r'bands \[1, 2, 3\] are 3, network_g.num_in_ch is 4'):
        export_main(['-opt', str(opt), '--output', str(tmp_path / 'out'), '--formats', 'safetensors'])
    assert not (tmp_path / 'out').exists()
    model = tmp_path / 'model'
    model.mkdir()
    for name in ('model.safetensors', 'model.json'):
        (model / name).write_bytes((exported / 'model' / name).read_bytes())
    sidecar = json.loads((model / 'model.json').read_text())
    sidecar['radiometry']['valid_range'] = [5, 1]
    (model / 'model.json').write_text(json.dumps(sidecar))
    with pytest.raises(RadiometryError, match=r'model.json: radiometry: .*valid_range \[5.0, 1.0\]'):
        build_model(None, model / 'model.safetensors')
