"""Remote-sensing datasets, LMDB packing and LR generation, on real samples and generated folders."""

import gc
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.utils.matlab_functions import imresize

import rssr_data  # noqa: F401
from rssr_data.prepare import make_splits, plan
from rssr_utils.image_io import ImageError, read_image
from tests.helpers.data import REPO, basicsr_lmdb_pairs, dataset, make_scenes, run_script


def test_prepare_generates_matlab_lr_and_reproducible_resumable_splits(tmp_path):
    src = make_scenes(tmp_path / 'download', per_class=10)
    out = tmp_path / 'prepared'
    proc = run_script('prepare_dataset.py', '--dataset', 'other', '--src', src, '--out', out, '--scales', 4, 8)
    assert proc.returncode == 0, proc.stderr
    splits = {n: (out / 'splits' / f'{n}.txt').read_text().split() for n in ('train', 'val', 'test')}
    assert [len(v) for v in splits.values()] == [16, 2, 2]
    assert splits == {
        k: v for k, v in make_splits([str(p.relative_to(src)) for p in src.rglob('*.png')], 'other').items()
    }
    rel = splits['train'][0]
    hr = read_image(src / rel)
    for scale in (4, 8):
        lr = cv2.imread(str(out / 'train' / f'LR_x{scale}' / rel), cv2.IMREAD_UNCHANGED)
        h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        expected = np.clip(np.round(imresize(hr[:h, :w].astype(np.float64), 1 / scale) * 255), 0, 255)
        np.testing.assert_array_equal(lr, expected)
    # Interrupted run: a missing LR is the only work left, and the split is kept.
    (out / 'train' / 'LR_x8' / rel).unlink()
    _, jobs = plan(str(src), str(out), 'other', [4, 8])
    assert jobs == [(str(src / rel), str(out / 'train' / 'HR' / rel), [(str(out / 'train' / 'LR_x8' / rel), 8)])]
    assert (
        run_script('prepare_dataset.py', '--dataset', 'other', '--src', src, '--out', out, '--scales', 4, 8).returncode
        == 0
    )
    assert (out / 'train' / 'LR_x8' / rel).is_file()
    # The preset reads the layout; training crops and tensors come out right.
    item = build_dataset(
        dict(
            type='RSSRUCMercedDataset',
            name='u',
            phase='train',
            root=str(out),
            scale=4,
            gt_size=16,
            use_hflip=True,
            use_rot=True,
            io_backend={'type': 'disk'},
        )
    )[0]
    assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 4, 4)


def test_prepare_decodes_each_hr_once_for_all_scales(tmp_path, monkeypatch):
    import rssr_data.prepare as prepare

    src = make_scenes(tmp_path / 'src', size=(48, 40), per_class=2)
    decoded = []
    real_decode = prepare.decode
    monkeypatch.setattr(
        prepare, 'decode', lambda content, name, **kw: decoded.append(name) or real_decode(content, name, **kw)
    )
    _, jobs = plan(str(src), str(tmp_path / 'out'), 'other', [2, 4, 8], fractions=(0.5, 0.25, 0.25))
    assert {len(lrs) for _, _, lrs in jobs} == {3}  # one job per HR, with its three LR images
    assert [prepare.run_job(job)[1] for job in jobs] == [None] * len(jobs)
    assert sorted(decoded) == sorted(job[0] for job in jobs)  # one decode per HR, not one per scale
    lr = cv2.imread(jobs[0][2][2][0], cv2.IMREAD_UNCHANGED)
    assert lr.shape == (6, 5, 3)
    # An HR smaller than a scale: bicubic_lr's check names it, and nothing of it is written.
    tiny = tmp_path / 'tiny.png'
    cv2.imwrite(str(tiny), np.zeros((6, 40, 3), np.uint8))
    job = (str(tiny), str(tmp_path / 'o' / 'HR' / 'tiny.png'), [(str(tmp_path / 'o' / 'x8.png'), 8)])
    assert prepare.run_job(job)[1].startswith(f'{tiny}: is 6x40, smaller than the scale 8')
    assert not (tmp_path / 'o').exists()


def test_nwpu_protocol_counts():
    files = [f'c{c}/img{i:03d}.jpg' for c in range(3) for i in range(700)]
    splits = make_splits(files, 'nwpu', seed=1)
    assert [len(splits[n]) for n in ('train', 'val', 'test')] == [135, 15, 150]
    assert splits == make_splits(files, 'nwpu', seed=1) != make_splits(files, 'nwpu', seed=2)
    with pytest.raises(ValueError, match='fewer than the 100'):
        make_splits(files[:50], 'nwpu')


def test_folder_to_lmdb_round_trip_and_basicsr_reads_it(tmp_path):
    hr_dir = make_scenes(tmp_path / 'HR', size=(32, 40))
    lr_dir = tmp_path / 'LR'
    for p in hr_dir.rglob('*.png'):
        (lr_dir / p.parent.name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(lr_dir / p.parent.name / p.name), cv2.resize(cv2.imread(str(p)), (10, 8)))
    hr_db, lr_db = tmp_path / 'HR.lmdb', tmp_path / 'LR.lmdb'
    proc = run_script('create_lmdb.py', '--input', hr_dir, lr_dir, '--output', hr_db, lr_db, '--verify')
    assert proc.returncode == 0, proc.stderr
    assert 'verified 8 keys' in proc.stdout and not list(tmp_path.glob('*.tmp'))
    folder = dataset(dataroot_gt=str(hr_dir), dataroot_lq=str(lr_dir), scale=4)
    packed = dataset(dataroot_gt=str(hr_db), dataroot_lq=str(lr_db), scale=4, io_backend={'type': 'lmdb'})
    assert len(folder) == len(packed) == 8
    for a, b in zip(folder, packed):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
    first = packed[0]
    del packed
    gc.collect()  # LMDB allows one open environment per path and process
    basicsr = basicsr_lmdb_pairs(hr_db, lr_db)
    assert torch.equal(basicsr[0]['gt'], first['gt']) and torch.equal(basicsr[0]['lq'], first['lq'])
    # An existing database is kept unless --overwrite.
    proc = run_script('create_lmdb.py', '--input', hr_dir, '--output', hr_db)
    assert proc.returncode != 0 and '--overwrite' in proc.stderr
    assert run_script('create_lmdb.py', '--input', hr_dir, '--output', hr_db, '--overwrite').returncode == 0


def test_presets_read_the_lmdbs_the_readme_command_writes(tmp_path):
    """docs/datasets.md's create_lmdb example writes <root>/<split>/{HR,LR_x8}.lmdb; RSSRUCMercedDataset finds them."""
    root = tmp_path / 'UCMerced'
    split = root / 'train'
    make_scenes(split / 'HR', size=(32, 40))
    for p in (split / 'HR').rglob('*.png'):
        (split / 'LR_x8' / p.parent.name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(split / 'LR_x8' / p.parent.name / p.name), cv2.resize(cv2.imread(str(p)), (5, 4)))
    preset = dict(type='RSSRUCMercedDataset', root=str(root), split='train', scale=8)
    # Before packing: the error names the database it looked for and the command that makes it.
    with pytest.raises(FileNotFoundError) as error:
        dataset(**preset, io_backend={'type': 'lmdb'})
    message = str(error.value)
    assert f'{split / "HR.lmdb"} (dataroot_gt) does not exist' in message
    command = message.split('make it with: ')[1].split(' (or')[0]
    assert command == f'python scripts/create_lmdb.py --input {split / "HR"} --output {split / "HR.lmdb"}'
    proc = subprocess.run(  # the command as printed, from the checkout
        [sys.executable, *command.split()[1:], '--verify'], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(FileNotFoundError, match=f'{split / "LR_x8.lmdb"} .dataroot_lq.*--input {split / "LR_x8"} '):
        dataset(**preset, io_backend={'type': 'lmdb'})
    # docs/datasets.md's command (both databases at once).
    proc = run_script(
        'create_lmdb.py',
        '--input',
        split / 'HR',
        split / 'LR_x8',
        '--output',
        split / 'HR.lmdb',
        split / 'LR_x8.lmdb',
        '--overwrite',
        '--verify',
    )
    assert proc.returncode == 0, proc.stderr
    packed = dataset(**preset, io_backend={'type': 'lmdb'})
    assert packed.opt['dataroot_gt'] == str(split / 'HR.lmdb')
    assert packed.opt['dataroot_lq'] == str(split / 'LR_x8.lmdb')
    folder = dataset(**preset)
    assert len(folder) == len(packed) == 8
    for a, b in zip(folder, packed):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
    del packed
    gc.collect()  # LMDB allows one open environment per path and process
    # A folder given where a database is expected: point at the packed one, do not pack again.
    with pytest.raises(ValueError, match=f'dataroot_gt is the folder {split / "HR"}; use {split / "HR.lmdb"}$'):
        dataset(
            dataroot_gt=str(split / 'HR'), dataroot_lq=str(split / 'LR_x8.lmdb'), scale=8, io_backend={'type': 'lmdb'}
        )


def test_lmdb_map_grows_instead_of_failing(tmp_path):
    from rssr_utils.lmdb_util import verify_lmdb, write_lmdb

    hr_dir = make_scenes(tmp_path / 'HR', size=(64, 64))
    files = sorted(str(p.relative_to(hr_dir)) for p in hr_dir.rglob('*.png'))
    assert write_lmdb(str(hr_dir), files, str(tmp_path / 'x.lmdb'), map_size=4096, compress_level=0) == 8
    assert verify_lmdb(str(tmp_path / 'x.lmdb')) == 8
    # The one LMDB reader (datasets, image jobs, verify_lmdb): UTF-8 keys, pickles without its handle,
    # and a missing key is one error naming the database and the key.
    import pickle

    from rssr_utils.lmdb_util import LmdbReader, meta_keys

    reader = pickle.loads(pickle.dumps(LmdbReader(str(tmp_path / 'x.lmdb'))))
    key = meta_keys(str(tmp_path / 'x.lmdb'))[0]
    assert cv2.imdecode(np.frombuffer(reader.get(key), np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 64, 3)
    with pytest.raises(ImageError, match=r'x\.lmdb:nope: listed in meta_info.txt but missing; rebuild'):
        reader.get('nope')


def test_lq_from_gt_is_matlab_bicubic_of_the_mod_cropped_hr(tmp_path):
    hr_dir = make_scenes(tmp_path / 'HR', size=(37, 42), per_class=1)
    item = dataset(dataroot_gt=str(hr_dir), lq_from_gt=True, scale=4)[0]
    hr = read_image(hr_dir / 'forest' / 'forest00.png')[:36, :40]
    expected = np.clip(imresize(hr, 1 / 4), 0, 1)[..., ::-1].transpose(2, 0, 1)
    assert item['gt'].shape == (3, 36, 40)
    assert torch.allclose(item['lq'], torch.from_numpy(expected.copy()).float(), atol=1e-6)


def test_sixteen_bit_images_are_scaled_by_their_range(tmp_path):
    img = np.full((8, 8, 3), 65535 // 4, np.uint16)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    assert np.allclose(read_image(tmp_path / 'a.png'), (65535 // 4) / 65535)


def test_bad_inputs_name_the_file_and_the_fix(tmp_path):
    hr_dir = make_scenes(tmp_path / 'HR', per_class=2, size=(32, 32))
    lr_dir = tmp_path / 'LR'
    (lr_dir / 'forest').mkdir(parents=True)
    cv2.imwrite(str(lr_dir / 'forest' / 'forest00.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r'no LR partner .*river'):
        dataset(dataroot_gt=str(hr_dir), dataroot_lq=str(lr_dir), scale=4)
    with pytest.raises(KeyError, match='dataroot_qt'):
        dataset(dataroot_qt=str(hr_dir), dataroot_gt=str(hr_dir), lq_from_gt=True, scale=4)
    with pytest.raises(FileNotFoundError, match='No images'):
        (tmp_path / 'empty').mkdir()
        dataset(dataroot_gt=str(tmp_path / 'empty'), lq_from_gt=True, scale=4)
    # LR of the wrong size for the scale
    only_forest = tmp_path / 'HR1' / 'forest'
    only_forest.mkdir(parents=True)
    (only_forest / 'forest00.png').write_bytes((hr_dir / 'forest' / 'forest00.png').read_bytes())
    with pytest.raises(ImageError, match=r'forest00.png is 32x32 but its LR .* is 8x8, not HR/3'):
        dataset(dataroot_gt=str(tmp_path / 'HR1'), dataroot_lq=str(lr_dir), scale=3)[0]
    (only_forest / 'forest00.png').write_bytes(b'not a png at all')
    with pytest.raises(ImageError, match='forest00.png: not an image format rssr reads'):
        dataset(dataroot_gt=str(tmp_path / 'HR1'), lq_from_gt=True, scale=4)[0]
    cv2.imwrite(str(only_forest / 'forest00.png'), np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ImageError, match='has 4 bands'):
        dataset(dataroot_gt=str(tmp_path / 'HR1'), lq_from_gt=True, scale=4)[0]
    proc = run_script('create_lmdb.py', '--input', tmp_path / 'HR1', '--output', tmp_path / 'bad.lmdb')
    assert proc.returncode != 0 and 'has 4 bands' in proc.stderr and not (tmp_path / 'bad.lmdb').exists()


def test_real_rssr25_pairs(samples_dir, tmp_path):
    train = samples_dir / 'train'
    data = dataset(
        dataroot_gt=str(train / 'HR'),
        dataroot_lq=str(train / 'LR'),
        scale=4,
        phase='train',
        gt_size=96,
        use_hflip=True,
        use_rot=True,
    )
    assert len(data) == 3
    item = data[0]
    assert item['gt'].shape == (3, 96, 96) and item['lq'].shape == (3, 24, 24)
    # The LR crop is aligned with the HR crop: downscaling HR lands near the LR (the LR was made from it).
    down = torch.nn.functional.interpolate(item['gt'][None], scale_factor=0.25, mode='area')[0]
    assert (down - item['lq']).abs().mean() < 0.05
    proc = run_script(
        'create_lmdb.py',
        '--input',
        train / 'HR',
        train / 'LR',
        '--output',
        tmp_path / 'HR.lmdb',
        tmp_path / 'LR.lmdb',
        '--verify',
    )
    assert proc.returncode == 0, proc.stderr
    packed = dataset(
        dataroot_gt=str(tmp_path / 'HR.lmdb'),
        dataroot_lq=str(tmp_path / 'LR.lmdb'),
        scale=4,
        io_backend={'type': 'lmdb'},
    )
    whole = dataset(dataroot_gt=str(train / 'HR'), dataroot_lq=str(train / 'LR'), scale=4)
    assert len(whole) == len(packed) == 3
    assert all(torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq']) for a, b in zip(whole, packed))


def test_extract_subimages_keeps_lr_aligned(samples_dir, tmp_path):
    train = samples_dir / 'train'
    crops = ['--hr', train / 'HR', '--lr', train / 'LR', '--scale', 4, '--out', tmp_path, '--crop-size', 240]
    proc = run_script('extract_subimages.py', *crops, '--step', 120)
    assert proc.returncode == 0, proc.stderr
    assert '3 scenes -> 27 crops' in proc.stdout  # (480 - 240) / 120 + 1 = 3 per side
    hr = cv2.imread(str(train / 'HR' / '42_1.png'))
    lr = cv2.imread(str(train / 'LR' / '42_1.png'))
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'HR' / '42_1_s005.png')), hr[120:360, 240:480])
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'LR' / '42_1_s005.png')), lr[30:90, 60:120])
    again = run_script('extract_subimages.py', *crops, '--step', 120)
    assert '(0 written now)' in again.stdout
    bad = run_script('extract_subimages.py', '--hr', train / 'HR', '--scale', 4, '--out', tmp_path, '--step', 122)
    assert bad.returncode != 0 and 'multiples of --scale' in bad.stderr
