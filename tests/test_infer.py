"""Tiled scene inference: seamless tiles, GeoTIFF metadata and dtype, bad input with no leftovers."""
import sys

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from rssr_model.tiled_inference import TiledSR, main, tile_starts


class ConvSR(nn.Module):
    """Three 3x3 convs and a pixel shuffle: receptive-field radius 3 LR pixels."""

    def __init__(self, scale=2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.body(x)


def test_tile_starts_cover_with_overlap():
    starts = tile_starts(100, 24, 8)
    assert starts[0] == 0 and starts[-1] == 76
    assert all(b - a <= 16 for a, b in zip(starts, starts[1:]))
    assert tile_starts(10, 24, 8) == [0]


@pytest.mark.parametrize('batch_size', [1, 3])
def test_tiled_equals_whole_image_when_the_receptive_field_fits(batch_size):
    torch.manual_seed(0)
    net = ConvSR().eval()
    img = np.random.default_rng(0).random((3, 50, 71), dtype=np.float32)
    engine = TiledSR(net, 2, tile=24, overlap=16, batch_size=batch_size)  # margin 4 >= radius 3
    strips = list(engine.rows(img))
    assert max(rows.shape[1] for _, rows in strips) <= 24 * 2  # memory: one band of tile rows at a time
    tiled = np.concatenate([rows for _, rows in strips], axis=1)
    with torch.no_grad():
        whole = net(torch.from_numpy(img)[None])[0].numpy()
    assert tiled.shape == whole.shape == (3, 100, 142)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert engine.tiles_done == len(tile_starts(50, 24, 16)) * len(tile_starts(71, 24, 16))


def test_png_scene_through_the_cli_with_self_ensemble(tmp_path):
    img = (np.random.default_rng(1).random((40, 52, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'scene.png'), img)
    main([str(tmp_path / 'scene.png'), str(tmp_path / 'out'), '--arch', 'Bicubic', '--arch-args', '{"upscale": 2}',
          '--tile', '16', '--overlap', '8', '--ensemble'])
    out = cv2.imread(str(tmp_path / 'out' / 'scene.png'))
    assert out.shape == (80, 104, 3) and out.dtype == np.uint8
    assert not list((tmp_path / 'out').glob('*.part*'))


def test_geotiff_keeps_crs_scales_transform_and_dtype(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from rasterio.transform import from_origin
    data = (np.random.default_rng(2).random((4, 30, 44)) * 4000).astype(np.uint16)  # 4 bands, 12-bit values
    src = tmp_path / 'scene.tif'
    with rasterio.open(src, 'w', driver='GTiff', width=44, height=30, count=4, dtype='uint16', crs='EPSG:32633',
                       transform=from_origin(500000, 4200000, 10, 10)) as f:
        f.write(data)
        f.update_tags(SENSOR='test')
    main([str(src), str(tmp_path / 'out'), '--arch', 'Bicubic', '--arch-args', '{"upscale": 4}', '--tile', '16',
          '--overlap', '8', '--bands', '3', '2', '1'])
    with rasterio.open(tmp_path / 'out' / 'scene.tif') as out:
        assert out.crs.to_epsg() == 32633 and out.dtypes == ('uint16', ) * 3
        assert (out.width, out.height) == (176, 120)
        assert out.transform.a == 2.5 and out.transform.e == -2.5 and out.transform.c == 500000
        assert out.tags()['SENSOR'] == 'test' and out.profile['tiled']
        result = out.read()
    # Band 3 of the input became the first output band, in the input's scale (values near 0..4000).
    assert abs(result[0].astype(float).mean() - data[2].astype(float).mean()) < 40


def test_bad_input_gives_a_message_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / 'broken.png').write_bytes(b'not an image')
    with pytest.raises(SystemExit, match='broken.png: cannot be read'):
        main([str(tmp_path / 'broken.png'), str(tmp_path / 'out'), '--arch', 'Bicubic'])
    assert not (tmp_path / 'out' / 'broken.png').exists()
    weights = tmp_path / 'w.pth'
    torch.save({'params': {'body.0.weight': torch.zeros(1)}}, weights)
    cv2.imwrite(str(tmp_path / 'ok.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit, match=r'w.pth does not fit MSRResNet'):
        main([str(tmp_path / 'ok.png'), str(tmp_path / 'out'), '--arch', 'MSRResNet', '--weights', str(weights)])
    cv2.imwrite(str(tmp_path / 'grey.png'), np.zeros((8, 8), np.uint8))
    with pytest.raises(SystemExit, match='has 1 band'):
        main([str(tmp_path / 'grey.png'), str(tmp_path / 'out'), '--arch', 'Bicubic'])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == []


@pytest.mark.parametrize('arch, args', [('FAT', '{"upscale": 2, "embed_dim": 16, "num_blocks": 1, "depth": 1, '
                                                 '"num_heads": 2}'),
                                        ('TSFNet', '{"upscale": 4, "num_feat": 8, "num_block": 1}')])
def test_our_archs_run_tiled_on_a_scene_larger_than_the_tile(tmp_path, arch, args):
    img = (np.random.default_rng(3).random((30, 45, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'scene.png'), img)
    main([str(tmp_path / 'scene.png'), str(tmp_path / 'out'), '--arch', arch, '--arch-args', args, '--tile', '16',
          '--overlap', '8', '--batch-size', '2'])
    scale = 2 if arch == 'FAT' else 4
    assert cv2.imread(str(tmp_path / 'out' / 'scene.png')).shape == (30 * scale, 45 * scale, 3)
