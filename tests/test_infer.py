"""Tiled scene inference: seamless tiles, official block evaluation, GeoTIFF metadata and dtype, bad input."""

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

import rssr_arch  # noqa: F401  (registers our archs; before basicsr)
from rssr_apps.inference import TiledSR, blend_weights, main, tile_starts


class ConvSR(nn.Module):
    """Three 3x3 convs and a pixel shuffle: receptive-field radius 3 LR pixels."""

    def __init__(self, scale=2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 3 * scale**2, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, x):
        return self.body(x)


def run(*args):
    main([str(a) for a in args] + ['--quiet'])


def test_tile_starts_cover_with_overlap():
    starts = tile_starts(100, 24, 8)
    assert starts[0] == 0 and starts[-1] == 76
    assert all(8 <= a + 24 - b for a, b in zip(starts, starts[1:]))  # neighbours overlap by at least 8
    assert tile_starts(10, 24, 8) == [0]
    assert tile_starts(75, 32, 0) == [0, 32, 43]  # the official block loop's starts


@pytest.mark.parametrize('overlap', [0, 1, 8, 13])
def test_blend_weights_sum_to_one(overlap):
    starts = tile_starts(61, 20, overlap)
    total = np.zeros(61 * 3)
    for start, w in zip(starts, blend_weights(starts, 20, 3, overlap)):
        total[start * 3 : (start + 20) * 3] += w
    np.testing.assert_allclose(total, 1, atol=1e-6)


@pytest.mark.parametrize('batch_size', [1, 3])
def test_tiled_equals_whole_image_when_the_receptive_field_fits(batch_size):
    torch.manual_seed(0)
    net = ConvSR().eval()
    lr = np.random.default_rng(0).integers(0, 65536, (3, 50, 71), dtype=np.uint16)
    engine = TiledSR(net, 2, tile=24, overlap=16, batch_size=batch_size)  # margin 4 >= radius 3
    strips = [(top, rows.copy()) for top, rows in engine.rows(lr, offset=0.0, span=65535.0)]  # 16-bit, per tile
    assert max(rows.shape[1] for _, rows in strips) <= 24 * 2  # memory: one band of tile rows at a time
    assert [top for top, _ in strips] == [2 * y for y in tile_starts(50, 24, 16)]
    tiled = np.concatenate([rows for _, rows in strips], axis=1)
    with torch.no_grad():
        whole = net(torch.from_numpy(lr.astype(np.float32) / 65535)[None])[0].numpy()
    assert tiled.shape == whole.shape == (3, 100, 142)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert engine.tiles_done == len(tile_starts(50, 24, 16)) * len(tile_starts(71, 24, 16))


def test_overlap_0_reproduces_the_official_tsfnet_block_evaluation():
    """The authors' test_block: blocks side by side, the last one moved back inside and written last."""
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('TSFNet')(upscale=4, num_feat=8, num_block=1).eval()
    lr = torch.rand(1, 3, 20, 27)
    ip, s = 8, 4
    expected = torch.zeros(1, 3, 80, 108)
    with torch.no_grad():
        for iy in range(0, 20, ip):
            iy = min(iy, 20 - ip)
            for ix in range(0, 27, ip):
                ix = min(ix, 27 - ip)
                expected[..., iy * s : (iy + ip) * s, ix * s : (ix + ip) * s] = net(lr[..., iy : iy + ip, ix : ix + ip])
    tiled = TiledSR(net, s, tile=ip, overlap=0, batch_size=3)(lr[0].numpy())
    np.testing.assert_allclose(tiled, expected[0].numpy(), atol=1e-5)


def test_png_scenes_through_the_cli_keep_8_and_16_bit(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), (rng.random((40, 52, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / 'in' / 'flat16.png'), np.full((21, 30, 3), 12345, np.uint16))
    run(
        tmp_path / 'in',
        tmp_path / 'out',
        '--arch',
        'RSSRBicubic',
        '--arch-args',
        '{"upscale": 2}',
        '--tile',
        '16',
        '--overlap',
        '8',
        '--ensemble',
    )
    out = cv2.imread(str(tmp_path / 'out' / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert out.shape == (80, 104, 3) and out.dtype == np.uint8
    flat = cv2.imread(str(tmp_path / 'out' / 'flat16.png'), cv2.IMREAD_UNCHANGED)
    assert flat.dtype == np.uint16 and flat.shape == (42, 60, 3)
    assert (flat == 12345).all()  # value / 65535 and back is exact
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png', 'flat16.png']


def test_geotiff_keeps_crs_scales_transform_and_dtype(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from rasterio.transform import from_origin

    data = (np.random.default_rng(2).random((4, 30, 44)) * 4000).astype(np.uint16)  # 4 bands, 12-bit values
    data[:, :5, :7] = 0  # a nodata corner
    src = tmp_path / 'scene.tif'
    with rasterio.open(
        src,
        'w',
        driver='GTiff',
        width=44,
        height=30,
        count=4,
        dtype='uint16',
        crs='EPSG:32633',
        transform=from_origin(500000, 4200000, 10, 10),
        nodata=0,
    ) as f:
        f.write(data)
        f.update_tags(SENSOR='test')
    run(
        src,
        tmp_path / 'out',
        '--arch',
        'RSSRBicubic',
        '--arch-args',
        '{"upscale": 4}',
        '--tile',
        '16',
        '--overlap',
        '8',
        '--bands',
        '3',
        '2',
        '1',
    )
    with rasterio.open(tmp_path / 'out' / 'scene.tif') as out:
        assert out.crs.to_epsg() == 32633 and out.dtypes == ('uint16',) * 3 and out.nodata == 0
        assert (out.width, out.height) == (176, 120)
        assert out.transform.a == 2.5 and out.transform.e == -2.5 and out.transform.c == 500000
        assert out.tags()['SENSOR'] == 'test' and out.profile['tiled'] and out.compression.name == 'deflate'
        result = out.read()
    assert (result[:, :20, :28] == 0).all() and (result[:, 20:, 28:] > 0).mean() > 0.99
    # Band 3 of the input became the first output band, in the input's scale (values near 0..4000).
    assert abs(result[0, 40:, 40:].astype(float).mean() - data[2, 10:, 10:].astype(float).mean()) < 40


def test_float_geotiff_round_trips_through_the_minmax_stretch(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from rasterio.transform import from_origin

    data = np.full((3, 12, 20), -3.5, np.float32)
    data[1] = 250.25  # reflectance-like floats far outside [0, 1]
    src = tmp_path / 'refl.tif'
    with rasterio.open(
        src,
        'w',
        driver='GTiff',
        width=20,
        height=12,
        count=3,
        dtype='float32',
        crs='EPSG:4326',
        transform=from_origin(10, 50, 0.1, 0.1),
    ) as f:
        f.write(data)
    run(
        src, tmp_path / 'out', '--arch', 'RSSRBicubic', '--arch-args', '{"upscale": 2}', '--tile', '8', '--overlap', '4'
    )
    with rasterio.open(tmp_path / 'out' / 'refl.tif') as out:
        assert out.dtypes == ('float32',) * 3 and out.transform.a == pytest.approx(0.05)
        assert 'RSSR_STRETCH' in out.tags()
        result = out.read()
    np.testing.assert_allclose(result[0], -3.5, atol=1e-3)
    np.testing.assert_allclose(result[1], 250.25, atol=1e-3)


def test_png_to_streamed_tiff_with_ext(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((10, 14, 3), (10, 20, 30), np.uint8))  # BGR
    run(
        tmp_path / 'a.png',
        tmp_path / 'out',
        '--arch',
        'RSSRBicubic',
        '--arch-args',
        '{"upscale": 2}',
        '--tile',
        '8',
        '--overlap',
        '2',
        '--ext',
        '.tif',
    )
    with rasterio.open(tmp_path / 'out' / 'a.tif') as out:
        assert out.crs is None and out.shape == (20, 28)
        assert out.read()[:, 0, 0].tolist() == [30, 20, 10]  # RGB


def test_bad_input_gives_a_message_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'broken.png').write_bytes(b'not an image')
    cv2.imwrite(str(tmp_path / 'in' / 'grey.png'), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / 'in' / 'ok.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit, match='2 of 3 scene'):
        run(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic')
    err = capsys.readouterr().err
    assert 'broken.png: not an image format rssr reads' in err and 'grey.png: has 1 band' in err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['ok.png']  # the good scene, nothing partial

    with pytest.raises(SystemExit, match='contains the input'):
        run(tmp_path / 'in' / 'ok.png', tmp_path / 'in', '--arch', 'RSSRBicubic')
    weights = tmp_path / 'w.pth'
    torch.save({'params': {'body.0.weight': torch.zeros(1)}}, weights)
    with pytest.raises(SystemExit, match=r'w.pth does not fit MSRResNet.*missing keys'):
        run(tmp_path / 'in' / 'ok.png', tmp_path / 'out2', '--arch', 'MSRResNet', '--weights', weights)
    weights.write_bytes(b'garbage')
    with pytest.raises(SystemExit, match='w.pth: not a readable PyTorch checkpoint'):
        run(tmp_path / 'in' / 'ok.png', tmp_path / 'out2', '--arch', 'MSRResNet', '--weights', weights)
    with pytest.raises(SystemExit, match='num_feet'):
        run(tmp_path / 'in' / 'ok.png', tmp_path / 'out2', '--arch', 'MSRResNet', '--arch-args', '{"num_feet": 8}')
    assert not (tmp_path / 'out2').exists()


@pytest.mark.parametrize(
    'arch, args',
    [
        ('FAT', '{"upscale": 2, "embed_dim": 16, "num_blocks": 1, "depth": 1, "num_heads": 2}'),
        ('TSFNet', '{"upscale": 4, "num_feat": 8, "num_block": 1}'),
    ],
)
def test_our_archs_run_tiled_on_a_scene_larger_than_the_tile(tmp_path, arch, args):
    img = (np.random.default_rng(3).random((30, 45, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'scene.png'), img)
    run(
        tmp_path / 'scene.png',
        tmp_path / 'out',
        '--arch',
        arch,
        '--arch-args',
        args,
        '--tile',
        '16',
        '--overlap',
        '8',
        '--batch-size',
        '2',
    )
    scale = 2 if arch == 'FAT' else 4
    assert cv2.imread(str(tmp_path / 'out' / 'scene.png')).shape == (30 * scale, 45 * scale, 3)


def test_official_tsfnet_checkpoint_runs_tiled_as_the_authors_evaluate(shared_dir, tmp_path):
    """The authors' weights (converted on load) on two side-by-side 256-HR blocks give their reference output."""
    from rssr_utils.weights import build_model

    ref = torch.load(shared_dir / 'parity' / 'tsfnet_small_x4.pt', weights_only=True)
    kw = ref['official_kwargs']
    torch.save(ref['state_dict'], tmp_path / 'official.pth')
    scale = kw['scale']
    net = build_model(
        {'type': 'TSFNet', 'upscale': scale, 'num_feat': kw['num_features'], 'num_block': kw['base_num_every_group']},
        weights=tmp_path / 'official.pth',
        official=True,
    )
    scene = torch.cat([ref['input'], ref['input'].flip(-1)], dim=-1)[0].numpy()  # LR 64x128: two blocks
    out = TiledSR(net, scale, tile=64, overlap=0, batch_size=2)(scene)
    expected = ref['output'][0].numpy()
    tol = 1e-4 * max(1, np.abs(expected).max())
    np.testing.assert_allclose(out[:, :, :256], expected, atol=tol)
    with torch.no_grad():
        second = net(ref['input'].flip(-1))[0].numpy()
    np.testing.assert_allclose(out[:, :, 256:], second, atol=1e-5)
