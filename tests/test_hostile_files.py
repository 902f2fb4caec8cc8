"""Hostile and unlucky files and data (issue 14): every bad input is named, nothing is written where it must not be.

Each test reproduces one failure of the issue (numbers in the names) through the
real scripts, datasets and ``rssr-infer``; docs/reliability.md lists them.
"""

import gc
import json
import random
import warnings

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize

import rssr_arch  # noqa: F401  (registers RSSRBicubic, FAT)
import rssr_data  # noqa: F401
from rssr_apps.inference import main as infer_main
from rssr_arch.bicubic_arch import RSSRBicubic
from rssr_utils import lmdb_util
from rssr_utils.image_io import MAX_PIXELS, ImageError, header_size, read_image
from tests.helpers.data import basicsr_lmdb_pairs, call_script, dataset, make_scenes, png_bomb

SMALL_FAT = '{"upscale": 2, "embed_dim": 16, "num_blocks": 1, "depth": 1, "num_heads": 2}'


def infer(*args):
    infer_main([str(a) for a in args] + ['--quiet'])


def write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def smooth(h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return (cv2.GaussianBlur(rng.random((h, w, channels)), (0, 0), 2) * 255).astype(np.uint8)


# --- the reader ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.tif', '.bmp', '.webp'])
@pytest.mark.parametrize('shape', [(37, 53, 3), (300, 5)])
def test_header_size_matches_the_decoder_without_decoding(ext, shape):
    ok, buf = cv2.imencode(ext, np.zeros(shape, np.uint8))
    assert ok and header_size(buf.tobytes()) == (shape[1], shape[0])


def test_bigtiff_and_big_endian_headers(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    for opts in (dict(bigtiff='YES'), dict(ENDIANNESS='BIG'), dict(bigtiff='YES', ENDIANNESS='BIG', tiled=True)):
        path = tmp_path / 't.tif'
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path, 'w', driver='GTiff', width=53, height=37, count=3, dtype='uint16', **opts) as f:
                f.write(np.zeros((3, 37, 53), np.uint16))
        assert header_size(path.read_bytes()) == (53, 37)


def test_reader_names_empty_truncated_oversized_and_rgba_files(tmp_path):
    (tmp_path / 'zero.png').write_bytes(b'')
    with pytest.raises(ImageError, match=r'zero.png: is empty \(0 bytes\)'):
        read_image(tmp_path / 'zero.png')
    ok, buf = cv2.imencode('.png', smooth(40, 30))
    (tmp_path / 'cut.png').write_bytes(buf.tobytes()[: len(buf) // 2])
    with pytest.raises(ImageError, match=r'cut.png: cannot be decoded: truncated.*declares 30x40 pixels'):
        read_image(tmp_path / 'cut.png')
    (tmp_path / 'bomb.png').write_bytes(png_bomb())
    with pytest.raises(ImageError, match=r'bomb.png: 100000x100000 = 10000000000 pixels .*above the limit'):
        read_image(tmp_path / 'bomb.png')
    with pytest.raises(ImageError, match=r'cut.png: 30x40 = 1200 pixels .*--max-pixels'):
        read_image(tmp_path / 'cut.png', max_pixels=1000)  # checked on the header, before decoding
    write(tmp_path / 'rgba.png', np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ImageError, match='rgba.png: has 4 bands'):
        read_image(tmp_path / 'rgba.png')


# --- 2: on-the-fly LR with flips and rotations ---------------------------------------------------------------------


def test_2_lq_from_gt_with_flips_and_rotations_trains(tmp_path):
    write(tmp_path / 'HR' / 'a.png', smooth(37, 42))
    data = dataset(
        dataroot_gt=str(tmp_path / 'HR'),
        lq_from_gt=True,
        scale=4,
        phase='train',
        gt_size=16,
        use_hflip=True,
        use_rot=True,
    )
    random.seed(0)
    for _ in range(8):  # augment draws flips and rotations from `random`; 8 draws cover every branch
        item = data[0]
        assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 4, 4)


# --- 5: NaN holes in float rasters -----------------------------------------------------------------------------------


@pytest.mark.parametrize('nodata', [None, -9999.0])
def test_5_nan_holes_of_a_float_raster_never_reach_the_network(tmp_path, nodata):
    rasterio = pytest.importorskip('rasterio')
    data = np.clip(np.random.default_rng(5).random((3, 40, 40), dtype=np.float32), 0, 1)
    data[:, 0, 0], data[:, 0, 1] = 0.0, 1.0  # valid values span exactly [0, 1]: the stretch is the identity
    data[:, 20:24, 20:24] = np.nan
    if nodata is not None:
        data[:, 5:7, 30:32] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            tmp_path / 'refl.tif', 'w', driver='GTiff', width=40, height=40, count=3, dtype='float32', nodata=nodata
        ) as f:
            f.write(data)
    infer(tmp_path / 'refl.tif', tmp_path / 'out', '--arch', 'FAT', '--arch-args', SMALL_FAT, '--tile', '40')
    with rasterio.open(tmp_path / 'out' / 'refl.tif') as f:
        out = f.read()
    hole = np.zeros((80, 80), bool)
    hole[40:48, 40:48] = True
    fill = np.nan if nodata is None else nodata
    np.testing.assert_array_equal(out[:, hole], fill)  # holes come back as NaN / nodata
    if nodata is not None:
        assert (out[:, 10:14, 60:64] == nodata).all()
        hole[10:14, 60:64] = True
    valid = out[:, ~hole]
    assert np.isfinite(valid).all() and valid.min() >= 0 and valid.max() <= 1  # nothing spread


# --- 6, 11, 14: LMDB keys, names, overwrite, verify, parents --------------------------------------------------------


def test_6_11_lmdb_keys_with_spaces_and_non_ascii_names_round_trip(tmp_path):
    names = ['dry river/scene 01.png', 'forest/café.png', 'forest/plain.png']
    for i, name in enumerate(names):
        hr = smooth(32, 40, seed=i)
        write(tmp_path / 'HR' / name, hr)
        write(tmp_path / 'LR' / name, cv2.resize(hr, (10, 8), interpolation=cv2.INTER_AREA))
    hr_db, lr_db = tmp_path / 'new' / 'sub' / 'HR.lmdb', tmp_path / 'new' / 'sub' / 'LR.lmdb'  # 14: no parents yet
    proc = call_script(
        'create_lmdb.py', '--input', tmp_path / 'HR', tmp_path / 'LR', '--output', hr_db, lr_db, '--verify'
    )
    assert proc.returncode == 0, proc.stderr
    assert 'verified 3 keys' in proc.stdout and "not ASCII (e.g. 'forest/café')" in proc.stderr
    meta = (hr_db / 'meta_info.txt').read_text(encoding='utf-8').splitlines()
    assert meta[0] == 'dry river/scene 01.bmp (32,40,3) 1'
    folder = dataset(dataroot_gt=str(tmp_path / 'HR'), dataroot_lq=str(tmp_path / 'LR'), scale=4)
    packed = dataset(dataroot_gt=str(hr_db), dataroot_lq=str(lr_db), scale=4, io_backend={'type': 'lmdb'})
    assert [p[0] for p in packed.pairs] == ['dry river/scene 01', 'forest/café', 'forest/plain']
    assert len(folder) == len(packed) == 3
    for a, b in zip(folder, packed):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
    split = tmp_path / 'split.txt'
    split.write_text('forest/café.png\ndry river/scene 01.png (32,40,3)\n', encoding='utf-8')  # both formats
    assert len(dataset(dataroot_gt=str(tmp_path / 'HR'), lq_from_gt=True, scale=4, meta_info_file=str(split))) == 2
    del packed
    gc.collect()
    # BasicSR's own dataset reads keys with spaces (everything before the first dot of a meta line is the key).
    (tmp_path / 'HR' / 'forest' / 'café.png').unlink()
    (tmp_path / 'LR' / 'forest' / 'café.png').unlink()
    ascii_hr, ascii_lr = tmp_path / 'a' / 'HR.lmdb', tmp_path / 'a' / 'LR.lmdb'
    proc = call_script('create_lmdb.py', '--input', tmp_path / 'HR', tmp_path / 'LR', '--output', ascii_hr, ascii_lr)
    assert proc.returncode == 0 and 'not ASCII' not in proc.stderr, proc.stderr
    basicsr = basicsr_lmdb_pairs(ascii_hr, ascii_lr)
    assert basicsr[0]['gt_path'] == 'dry river/scene 01' and basicsr[0]['gt'].shape == (3, 32, 40)


def test_6_verify_runs_before_the_rename(tmp_path, monkeypatch):
    make_scenes(tmp_path / 'HR', per_class=1)
    out = tmp_path / 'HR.lmdb'
    seen = []
    real = lmdb_util.verify_lmdb

    def spy(path):
        seen.append((path, out.exists()))
        return real(path)

    monkeypatch.setattr(lmdb_util, 'verify_lmdb', spy)
    files = ['forest/forest00.png', 'river/river00.png']
    assert lmdb_util.write_lmdb(str(tmp_path / 'HR'), files, str(out), verify=True) == 2
    assert seen == [(str(out) + '.tmp', False)] and out.is_dir() and not (tmp_path / 'HR.lmdb.tmp').exists()

    def broken(path):
        raise ValueError(f'{path}: key x decodes to None')

    monkeypatch.setattr(lmdb_util, 'verify_lmdb', broken)
    with pytest.raises(ValueError, match='decodes to None'):
        lmdb_util.write_lmdb(str(tmp_path / 'HR'), files, str(tmp_path / 'bad.lmdb'), verify=True)
    assert not (tmp_path / 'bad.lmdb').exists() and not (tmp_path / 'bad.lmdb.tmp').exists()


def test_7_11_create_lmdb_lists_every_bad_file_and_writes_nothing(tmp_path):
    make_scenes(tmp_path / 'HR', per_class=2, size=(16, 16))
    (tmp_path / 'HR' / 'forest' / 'zero.png').write_bytes(b'')
    (tmp_path / 'HR' / 'river' / 'loop.png').symlink_to('loop.png')  # a symlink loop
    (tmp_path / 'HR' / 'river' / 'bomb.png').write_bytes(png_bomb())
    write(tmp_path / 'HR' / 'river' / 'river00.jpg', smooth(16, 16))  # the key of river00.png again
    make_scenes(tmp_path / 'LR', per_class=2, size=(4, 4))
    proc = call_script(
        'create_lmdb.py',
        '--input',
        tmp_path / 'LR',
        tmp_path / 'HR',
        '--output',
        tmp_path / 'LR.lmdb',
        tmp_path / 'HR.lmdb',
    )
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert '4 bad image(s)' in proc.stderr
    assert 'zero.png: is empty (0 bytes)' in proc.stderr
    assert 'loop.png: cannot be read (Too many levels of symbolic links)' in proc.stderr
    assert 'bomb.png: 100000x100000' in proc.stderr
    assert "river00.png: has the key 'river/river00' of " in proc.stderr
    # 11: the first output was complete but nothing is renamed into place unless all are, and the message says so.
    assert f'nothing was written: {tmp_path / "LR.lmdb"}, {tmp_path / "HR.lmdb"}' in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['HR', 'LR']


def test_11_a_failed_rename_says_which_outputs_were_written(tmp_path, monkeypatch):
    make_scenes(tmp_path / 'HR', per_class=1, size=(16, 16))
    make_scenes(tmp_path / 'LR', per_class=1, size=(4, 4))
    real = lmdb_util.install

    def install(tmp, out):  # the disk fills up, or a folder is locked, at the second rename
        if out.endswith('LR.lmdb'):
            raise OSError(f'cannot rename {tmp} to {out}')
        real(tmp, out)

    monkeypatch.setattr(lmdb_util, 'install', install)
    hr_db, lr_db = tmp_path / 'HR.lmdb', tmp_path / 'LR.lmdb'
    proc = call_script('create_lmdb.py', '--input', tmp_path / 'HR', tmp_path / 'LR', '--output', hr_db, lr_db)
    assert proc.returncode == 1 and f'written: {hr_db}; not written: {lr_db}' in proc.stderr
    assert hr_db.is_dir() and not lr_db.exists() and not (tmp_path / 'LR.lmdb.tmp').exists()


def test_11_overwrite_only_replaces_an_lmdb(tmp_path):
    photos = tmp_path / 'photos.lmdb'  # an image folder that happens to be named like an LMDB
    make_scenes(photos / 'imgs', per_class=1)
    proc = call_script('create_lmdb.py', '--input', photos / 'imgs', '--output', photos, '--overwrite')
    assert proc.returncode == 1 and f'--output {photos} contains the input {photos / "imgs"}' in proc.stderr
    other = tmp_path / 'other.lmdb'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    proc = call_script('create_lmdb.py', '--input', photos / 'imgs', '--output', other, '--overwrite')
    assert proc.returncode == 1 and 'other.lmdb exists and is not an LMDB this tool wrote' in proc.stderr
    assert (other / 'notes.txt').read_text() == 'mine' and len(list(photos.rglob('*.png'))) == 2
    proc = call_script('create_lmdb.py', '--input', photos / 'imgs', photos / 'imgs', '--output', other, other)
    assert proc.returncode == 2 and 'each --output must be a different folder' in proc.stderr
    db = tmp_path / 'db.lmdb'
    assert call_script('create_lmdb.py', '--input', photos / 'imgs', '--output', db).returncode == 0
    assert call_script('create_lmdb.py', '--input', photos / 'imgs', '--output', db, '--overwrite').returncode == 0
    assert sorted(p.name for p in db.iterdir()) == ['data.mdb', 'lock.mdb', 'meta_info.txt']


# --- 7, 10: datasets and prepare_dataset ------------------------------------------------------------------------


def test_7_zero_byte_image_in_a_dataset_is_named(tmp_path):
    make_scenes(tmp_path / 'HR', per_class=1, size=(16, 16))
    (tmp_path / 'HR' / 'forest' / 'forest00.png').write_bytes(b'')
    data = dataset(dataroot_gt=str(tmp_path / 'HR'), lq_from_gt=True, scale=4)
    with pytest.raises(ImageError, match=r'forest00.png: is empty \(0 bytes\)'):
        data[0]


def test_7_10_prepare_dataset_validates_before_copying_and_names_small_images(tmp_path):
    src = make_scenes(tmp_path / 'download', per_class=10, size=(16, 16))
    (src / 'forest' / 'forest00.png').write_bytes(b'')
    write(src / 'forest' / 'forest01.png', np.zeros((16, 16, 4), np.uint8))  # RGBA
    write(src / 'river' / 'river00.png', smooth(3, 40))  # smaller than the scale
    out = tmp_path / 'prepared'
    proc = call_script('prepare_dataset.py', '--dataset', 'other', '--src', src, '--out', out, '--scales', 4)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert '3 HR image(s) are bad and were not copied' in proc.stderr
    assert 'forest00.png: is empty (0 bytes)' in proc.stderr and 'forest01.png: has 4 bands' in proc.stderr
    assert 'river00.png: is 3x40, smaller than the scale 4' in proc.stderr
    for bad in ('forest/forest00.png', 'forest/forest01.png', 'river/river00.png'):
        assert not list(out.glob(f'*/HR/{bad}'))  # never copied without its LR
    copies = sorted(p.relative_to(out) for p in out.glob('*/HR/*/*.png'))
    lrs = sorted(p.relative_to(out) for p in out.glob('*/LR_x4/*/*.png'))
    assert len(copies) == 17 and [str(p).replace('HR', 'LR_x4') for p in copies] == [str(p) for p in lrs]


# --- 8: scene inference ------------------------------------------------------------------------------------------


def test_8_a_decompression_bomb_in_a_folder_is_reported_and_the_others_run(tmp_path, capsys):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'a_bomb.png').write_bytes(png_bomb())
    (tmp_path / 'in' / 'b_empty.png').write_bytes(b'')
    write(tmp_path / 'in' / 'c_ok.png', smooth(8, 8))
    with pytest.raises(SystemExit, match='2 of 3 scene'):
        infer(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic')
    err = capsys.readouterr().err
    assert 'a_bomb.png: 100000x100000 = 10000000000 pixels' in err and f'limit of {MAX_PIXELS}' in err
    assert 'b_empty.png: is empty (0 bytes)' in err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['c_ok.png']


def test_8_a_sparse_100000_pixel_geotiff_is_refused_before_reading(tmp_path, capsys):
    rasterio = pytest.importorskip('rasterio')
    (tmp_path / 'in').mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            tmp_path / 'in' / 'huge.tif',
            'w',
            driver='GTiff',
            width=100000,
            height=100000,
            count=3,
            dtype='uint8',
            tiled=True,
            blockxsize=4096,
            blockysize=4096,
            sparse_ok=True,
        ):
            pass  # no block written: a few KiB on disk, 28 GiB to read
    write(tmp_path / 'in' / 'small.tif', smooth(8, 8))
    with pytest.raises(SystemExit, match='1 of 2 scene'):
        infer(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic')
    assert 'huge.tif: 100000x100000 = 10000000000 pixels (about 27.9 GiB to read)' in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['small.tif']


# --- 9: split files ---------------------------------------------------------------------------------------------


def test_9_split_entries_never_leave_the_data_folder(tmp_path):
    src = make_scenes(tmp_path / 'd1' / 'd2' / 'download', per_class=2, size=(16, 16))
    write(tmp_path / 'v.png', smooth(16, 16))  # reached from src by ../../../v.png
    out = tmp_path / 'o1' / 'prepared'  # out/train/HR/../../../v.png is o1/v.png: outside --out
    (out / 'splits').mkdir(parents=True)
    for name in ('train', 'val', 'test'):
        (out / 'splits' / f'{name}.txt').write_text('forest/forest00.png\n')
    (out / 'splits' / 'train.txt').write_text('forest/forest00.png\n../../../v.png\n')
    proc = call_script('prepare_dataset.py', '--dataset', 'other', '--src', src, '--out', out, '--scales', 4)
    assert proc.returncode == 1
    assert "train.txt: entry '../../../v.png' is not a relative path inside the data folder" in proc.stderr
    assert sorted(p.name for p in (tmp_path / 'o1').iterdir()) == ['prepared'] and not list(out.rglob('*.png'))
    with pytest.raises(ValueError, match=r"split.txt: entry '/etc/passwd'"):
        (tmp_path / 'split.txt').write_text('/etc/passwd\n')
        dataset(dataroot_gt=str(src), lq_from_gt=True, scale=4, meta_info_file=str(tmp_path / 'split.txt'))


# --- 12: extract_subimages ---------------------------------------------------------------------------------------


def test_12_extract_subimages_names_bad_lr_and_never_mixes_crop_sizes(tmp_path):
    write(tmp_path / 'HR' / 'a.png', smooth(64, 64))
    write(tmp_path / 'HR' / 'b.png', smooth(64, 64, seed=1))
    write(tmp_path / 'HR' / 'c.png', smooth(64, 64, seed=2))
    write(tmp_path / 'LR' / 'a.png', smooth(16, 16))
    (tmp_path / 'LR' / 'b.png').write_bytes(b'')
    write(tmp_path / 'LR' / 'c.png', smooth(16, 16, channels=4))  # RGBA
    out = tmp_path / 'sub'
    common = ['--hr', tmp_path / 'HR', '--lr', tmp_path / 'LR', '--scale', 4, '--out', out, '--step', 16]
    proc = call_script('extract_subimages.py', *common, '--crop-size', 32)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert '2 of 3 scene(s) failed' in proc.stderr
    assert 'b.png: is empty (0 bytes)' in proc.stderr and 'c.png: has 4 bands' in proc.stderr
    assert len(list((out / 'HR').iterdir())) == 9 and len(list((out / 'LR').iterdir())) == 9  # a.png's crops
    # Another crop size into the same --out: refused, then --overwrite removes only the recorded crops.
    (tmp_path / 'LR' / 'b.png').unlink()
    (tmp_path / 'LR' / 'c.png').unlink()
    proc = call_script('extract_subimages.py', *common, '--crop-size', 48)
    assert proc.returncode == 1 and 'holds 9 crops made with other settings' in proc.stderr
    write(out / 'HR' / 'mine.png', smooth(8, 8))  # someone else's file
    proc = call_script('extract_subimages.py', *common, '--crop-size', 48, '--overwrite')
    assert proc.returncode == 1 and '2 of 3 scene(s) failed' in proc.stderr  # b, c: no LR partner now
    assert sorted(p.name for p in (out / 'HR').iterdir()) == [
        'a_s000.png',
        'a_s001.png',
        'a_s002.png',
        'a_s003.png',
        'mine.png',
    ]
    assert cv2.imread(str(out / 'HR' / 'a_s000.png')).shape == (48, 48, 3)
    recorded = [json.loads(line) for line in (out / 'crops.jsonl').read_text().splitlines()]
    assert recorded[0]['crop_size'] == 48 and sorted(recorded[1:]) == [f'a_s00{i}.png' for i in range(4)]
    empty = tmp_path / 'foreign'
    write(empty / 'HR' / 'x_s000.png', smooth(8, 8))
    proc = call_script('extract_subimages.py', *common, '--crop-size', 48, '--out', empty, '--overwrite')
    assert proc.returncode == 1 and 'not recorded in crops.jsonl' in proc.stderr
    assert (empty / 'HR' / 'x_s000.png').is_file()


# --- 15: Bicubic on 1-pixel scenes, rssr-infer outputs ---------------------------------------------------------------


@pytest.mark.parametrize('size', [(1, 1), (1, 3), (2, 1), (5, 7)])
def test_15_bicubic_arch_matches_imresize_on_tiny_scenes(size):
    x = np.random.default_rng(0).random(size + (3,))
    out = RSSRBicubic(4)(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, imresize(x, 4), atol=1e-6)


def test_15_rssr_infer_keeps_outputs_unless_asked(tmp_path, capsys):
    for name in ('a.png', 'b.png', 'one pixel é.png'):
        write(tmp_path / 'in' / name, smooth(1, 1) if name.startswith('one') else smooth(6, 6))
    infer(tmp_path / 'in' / 'a.png', tmp_path / 'out', '--arch', 'RSSRBicubic')
    first = (tmp_path / 'out' / 'a.png').read_bytes()
    write(tmp_path / 'out' / 'a.png', np.zeros((4, 4, 3), np.uint8))  # a user's edit of a result
    edited = (tmp_path / 'out' / 'a.png').read_bytes()
    with pytest.raises(SystemExit, match=r'1 output\(s\) exist, e.g. .*a.png; pass --overwrite'):
        infer(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic')
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.png']
    infer(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic', '--skip-existing')  # an interrupted run goes on
    assert '1 existing output(s) kept' in capsys.readouterr().err
    assert (tmp_path / 'out' / 'a.png').read_bytes() == edited
    assert cv2.imread(str(tmp_path / 'out' / 'one pixel é.png')).shape == (4, 4, 3)
    infer(tmp_path / 'in', tmp_path / 'out', '--arch', 'RSSRBicubic', '--overwrite')
    assert (tmp_path / 'out' / 'a.png').read_bytes() == first
