"""Hostile and unlucky inputs, second pass (issue 22): nothing lost, any byte in a name, symlinks out of a source,
every CLI number range-checked, exports deterministic to the byte (headers: tests/test_hostile_headers.py).

Every test drives the real commands (in this process, through their ``main``) on real files: names with
non-UTF-8 bytes made through bytes paths, real symbolic links, the leftovers a kill leaves in an LMDB
install. docs/reliability.md lists what each one holds.
"""

import hashlib
import os
import shutil

import cv2
import numpy as np
import pytest

import rssr_arch  # noqa: F401  (registers Bicubic)
from rssr_apps import benchmark, degrade, denoise, export, inference, lam
from rssr_utils import lmdb_util
from rssr_utils.image_io import ImageError, scan_images
from tests.helpers.data import call_main, call_script, make_scenes, script_main

TINY_EDSR = '{"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1}'
BAD = b'caf\xe9'  # Latin-1 'café': not valid UTF-8


def snapshot(root):
    """{relative path (bytes): sha256} of every file under ``root``: what must not change."""
    found = {}
    for dirpath, _, files in os.walk(os.fsencode(root)):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, 'rb') as f:
                    found[os.path.relpath(path, os.fsencode(root))] = hashlib.sha256(f.read()).hexdigest()
    return found


def one_line(proc):
    """The command's error: its last stderr line (argparse prints the usage first); no traceback anywhere."""
    assert 'Traceback' not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture
def hr(tmp_path):
    make_scenes(tmp_path / 'HR', per_class=1, size=(16, 16))
    return tmp_path / 'HR'


# --- 4: nothing lost -------------------------------------------------------------------------------------------


def _lmdb(tmp_path, hr):
    lmdb_util.write_lmdb(str(hr), scan_images(str(hr)), str(tmp_path / 'HR.lmdb'))
    return tmp_path / 'HR.lmdb'


OUTPUT_IN_INPUT = {  # name: (command, arguments from (tmp_path, hr), expected relation)
    'degrade onto its input with --overwrite': (
        degrade.main,
        lambda t, hr: ['--input', hr, '--output', hr, '--scale', 2, '--overwrite'],
        'is the input',
    ),
    'degrade an LMDB onto itself': (
        degrade.main,
        lambda t, hr: ['--input', _lmdb(t, hr), '--output', t / 'HR.lmdb', '--scale', 2, '--overwrite'],
        'is the input',
    ),
    'degrade into a folder of its input': (
        degrade.main,
        lambda t, hr: ['--input', hr, '--output', hr / 'forest' / 'LR', '--scale', 2],
        'lies inside the input',
    ),
    'denoise a class folder into the data set': (
        denoise.main,
        lambda t, hr: ['--input', hr / 'forest', '--output', hr, '--method', 'nlm', '--overwrite'],
        'contains the input',
    ),
    'prepare into its source': (
        script_main('prepare_dataset.py'),
        lambda t, hr: ['--dataset', 'other', '--src', hr, '--out', hr / 'prepared'],
        'lies inside the input',
    ),
    'create_lmdb inside its input': (
        script_main('create_lmdb.py'),
        lambda t, hr: ['--input', hr, '--output', hr / 'x.lmdb'],
        'lies inside the input',
    ),
    'extract_subimages onto the LR folder': (
        script_main('extract_subimages.py'),
        lambda t, hr: ['--hr', hr, '--lr', hr, '--out', hr, '--crop-size', 8, '--step', 8],
        'is the input',
    ),
    'rssr-infer into the input folder with --overwrite': (
        inference.main,
        lambda t, hr: [hr / 'forest', hr / 'forest', '--arch', 'RSSRBicubic', '--overwrite', '--quiet'],
        'is the input',
    ),
    'rssr-export over its weights': (
        export.main,
        lambda t, hr: ['--arch', 'RSSRBicubic', '--weights', hr / 'forest' / 'forest00.png', '--output', hr / 'forest'],
        'contains the input',
    ),
    'rssr-lam into the image folder': (
        lam.main,
        lambda t, hr: [
            *('--arch', 'RSSRBicubic', '--scale', 2, '--image', hr / 'forest' / 'forest00.png'),
            *('--window', 0, 0, 4, '--output', hr, '--overwrite'),
        ],
        'contains the input',
    ),
    'rssr-bench into the option file folder': (
        benchmark.main,
        lambda t, hr: ['-opt', _bench_options(hr), '--out', hr, '--overwrite'],
        'contains the input',
    ),
}


def _bench_options(folder):
    path = folder / 'bench.yml'
    path.write_text('name: tiny\nscale: 2\nmodels: []\n')
    return path


@pytest.mark.parametrize('case', OUTPUT_IN_INPUT)
def test_22_no_tool_writes_into_its_input(tmp_path, hr, case):
    command, arguments, relation = OUTPUT_IN_INPUT[case]
    args = arguments(tmp_path, hr)
    before = snapshot(tmp_path)
    proc = call_main(command, *args)
    assert 'Traceback' not in proc.stderr and proc.returncode == 1, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if relation in line)  # create_lmdb adds a summary line
    assert 'outside the inputs' in line and str(tmp_path) in line
    assert snapshot(tmp_path) == before  # nothing replaced, nothing created (LMDB lock files included)


def test_22_replacing_needs_overwrite_in_export_lam_and_bench(tmp_path, hr):
    out = tmp_path / 'export'
    args = ['--arch', 'EDSR', '--arch-args', TINY_EDSR, '--scale', 2, '--output', out, '--formats', 'safetensors']
    assert call_main(export.main, *args).returncode == 0
    before = snapshot(out)
    proc = call_main(export.main, *args)
    assert proc.returncode == 1 and 'model.safetensors exists' in one_line(proc) and '--overwrite' in one_line(proc)
    assert snapshot(out) == before
    assert call_main(export.main, *args, '--overwrite').returncode == 0

    lam_dir = tmp_path / 'lam'
    (lam_dir / 'RSSRBicubic').mkdir(parents=True)
    (lam_dir / 'RSSRBicubic' / 'mine.txt').write_text('earlier work')
    (lam_dir / 'notes.txt').write_text('not a LAM result')
    image = hr / 'forest' / 'forest00.png'
    args = ['--arch', 'RSSRBicubic', '--scale', 2, '--image', image, '--window', 4, 4, 8, '--output', lam_dir]
    proc = call_main(lam.main, *args, '--steps', 2, '--no-progress')
    assert proc.returncode == 1 and 'Bicubic exists; pass --overwrite' in one_line(proc)
    assert (lam_dir / 'RSSRBicubic' / 'mine.txt').read_text() == 'earlier work'  # LAM used to delete it unasked
    assert call_main(lam.main, *args, '--steps', 2, '--no-progress', '--overwrite').returncode == 0
    assert (lam_dir / 'RSSRBicubic' / 'lam.json').is_file() and (
        lam_dir / 'notes.txt'
    ).read_text() == 'not a LAM result'

    reports = tmp_path / 'bench'
    reports.mkdir()
    (reports / 'summary.csv').write_text('earlier results')
    proc = call_main(benchmark.main, '-opt', _bench_options(tmp_path), '--out', reports)
    assert proc.returncode == 1 and 'summary.csv exists; pass --overwrite' in one_line(proc)
    assert (reports / 'summary.csv').read_text() == 'earlier results'


def _keys(db):
    return sorted(lmdb_util.meta_keys(str(db)))


def _kill_between_the_renames(db, new_tmp):
    os.rename(db, f'{db}.old')  # what install() had done when the kill came
    shutil.copytree(new_tmp, f'{db}.tmp')


def _kill_while_deleting_old(db, new_tmp):
    shutil.copytree(db, f'{db}.old')
    shutil.rmtree(db)
    shutil.copytree(new_tmp, db)
    for name in ('data.mdb', 'meta_info.txt'):  # rmtree had removed these two
        os.remove(f'{db}.old/{name}')


def _kill_while_packing(db, new_tmp):
    shutil.copytree(new_tmp, f'{db}.tmp')
    os.remove(f'{db}.tmp/meta_info.txt')  # written last


def _kill_while_clearing_tmp(db, new_tmp):
    os.mkdir(f'{db}.tmp')  # rmtree of a stale .tmp had emptied it


@pytest.mark.parametrize(
    'kill', [_kill_between_the_renames, _kill_while_deleting_old, _kill_while_packing, _kill_while_clearing_tmp]
)
def test_22_a_kill_at_any_moment_of_an_lmdb_install_is_rerun(tmp_path, kill):
    old_images, new_images = tmp_path / 'old', tmp_path / 'new'
    make_scenes(old_images, classes=('forest',), per_class=2, size=(8, 8))
    make_scenes(new_images, classes=('river',), per_class=3, size=(8, 8))
    db = tmp_path / 'HR.lmdb'
    assert call_script('create_lmdb.py', '--input', old_images, '--output', db).returncode == 0
    assert call_script('create_lmdb.py', '--input', new_images, '--output', tmp_path / 'new.lmdb').returncode == 0
    kill(db, tmp_path / 'new.lmdb')
    proc = call_script('create_lmdb.py', '--input', new_images, '--output', db, '--overwrite')  # the same command
    assert proc.returncode == 0, proc.stderr
    assert _keys(db) == ['river/river00', 'river/river01', 'river/river02']
    assert not os.path.lexists(f'{db}.old') and not os.path.lexists(f'{db}.tmp')


def test_22_a_kill_between_the_renames_gives_the_old_database_back(tmp_path):
    images = tmp_path / 'old'
    make_scenes(images, classes=('forest',), per_class=2, size=(8, 8))
    db = tmp_path / 'HR.lmdb'
    assert call_script('create_lmdb.py', '--input', images, '--output', db).returncode == 0
    os.rename(db, f'{db}.old')  # killed after the first rename of an --overwrite run
    proc = call_script('create_lmdb.py', '--input', images, '--output', db)  # rerun without --overwrite
    assert proc.returncode == 1 and f'{db} exists; pass --overwrite' in proc.stderr  # the one command that fixes it
    assert _keys(db) == ['forest/forest00', 'forest/forest01'] and not os.path.lexists(f'{db}.old')


# --- 5: names, links and headers -------------------------------------------------------------------------------


@pytest.fixture
def bad_names(tmp_path):
    """A class folder holding ``café.png`` with its é in Latin-1 (one byte 0xE9), beside a plain image."""
    make_scenes(tmp_path / 'HR', classes=('a',), per_class=1, size=(16, 16))
    src = os.fsencode(tmp_path / 'HR' / 'a')
    shutil.copyfile(os.path.join(src, b'a00.png'), os.path.join(src, BAD + b'.png'))
    return tmp_path


@pytest.mark.parametrize(
    'command, args',
    [
        (degrade.main, ['--input', 'HR', '--output', 'out', '--scale', 2]),
        (denoise.main, ['--input', 'HR', '--output', 'out', '--method', 'nlm']),
        (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'HR', '--out', 'out', '--scales', 2]),
        (script_main('create_lmdb.py'), ['--input', 'HR', '--output', 'out.lmdb']),
    ],
    ids=['degrade', 'denoise', 'prepare', 'create_lmdb'],
)
def test_22_names_that_are_not_utf8_are_refused_by_name_where_keys_need_text(bad_names, monkeypatch, command, args):
    monkeypatch.chdir(bad_names)
    proc = call_main(command, *args)
    assert proc.returncode == 1 and 'HR/a/caf\\xe9.png' in proc.stderr and 'not valid UTF-8' in proc.stderr
    assert 'Traceback' not in proc.stderr and not os.path.lexists('out') and not os.path.lexists('out.lmdb')


def test_22_names_that_are_not_utf8_are_written_by_inference_and_cropping(bad_names):
    src = os.fsencode(bad_names / 'HR' / 'a')
    out = bad_names / 'SR'
    assert call_main(inference.main, bad_names / 'HR' / 'a', out, '--arch', 'RSSRBicubic', '--quiet').returncode == 0
    written = os.path.join(os.fsencode(out), BAD + b'.png')  # OpenCV's imwrite crashed (SIGSEGV) on this name
    assert cv2.imdecode(np.fromfile(written, np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 64, 3)
    proc = call_main(
        inference.main, bad_names / 'HR' / 'a', bad_names / 'tif', '--arch', 'RSSRBicubic', '--ext', '.tif'
    )
    assert proc.returncode == 0 and os.path.isfile(os.path.join(os.fsencode(bad_names / 'tif'), BAD + b'.tif'))
    shutil.copyfile(os.path.join(src, b'a00.png'), os.path.join(src, BAD + b'2.tif'))  # GDAL opens UTF-8 paths only
    proc = call_main(inference.main, bad_names / 'HR' / 'a', bad_names / 'SR2', '--arch', 'RSSRBicubic', '--quiet')
    assert proc.returncode == 1 and 'caf\\xe92.tif: the file name is not valid UTF-8' in proc.stderr
    assert len(os.listdir(bad_names / 'SR2')) == 2  # the other scenes were done
    crops = bad_names / 'crops'
    proc = call_script('extract_subimages.py', '--hr', bad_names / 'HR', '--out', crops, '--crop-size', 8, '--step', 8)
    assert proc.returncode == 0 and os.path.isfile(os.path.join(os.fsencode(crops / 'HR' / 'a'), BAD + b'_s003.png'))


def test_22_symlinks_out_of_a_source_folder_are_refused_by_name(tmp_path):
    make_scenes(tmp_path / 'HR', per_class=1, size=(16, 16))
    make_scenes(tmp_path / 'elsewhere', classes=('private',), per_class=1, size=(16, 16))
    os.symlink(tmp_path / 'HR' / 'river' / 'river00.png', tmp_path / 'HR' / 'forest' / 'inside.png')
    assert 'forest/inside.png' in scan_images(str(tmp_path / 'HR'))  # a link inside the tree is read
    link = tmp_path / 'HR' / 'forest' / 'photo.png'
    os.symlink(tmp_path / 'elsewhere' / 'private' / 'private00.png', link)
    commands = [
        (script_main('prepare_dataset.py'), '--dataset', 'other', '--src', tmp_path / 'HR', '--out', tmp_path / 'p'),
        (script_main('create_lmdb.py'), '--input', tmp_path / 'HR', '--output', tmp_path / 'x.lmdb'),
        (script_main('extract_subimages.py'), '--hr', tmp_path / 'HR', '--out', tmp_path / 'c', '--crop-size', 8),
        (degrade.main, '--input', tmp_path / 'HR', '--output', tmp_path / 'lr', '--scale', 2),
    ]
    for command, *args in commands:
        proc = call_main(command, *args)
        assert proc.returncode == 1 and f'{link}: is a symbolic link out of' in proc.stderr, proc.stderr
    os.remove(link)
    os.symlink(tmp_path / 'elsewhere' / 'private', tmp_path / 'HR' / 'linked')  # a linked folder, too
    with pytest.raises(ImageError, match='HR/linked: is a symbolic link out of'):
        scan_images(str(tmp_path / 'HR'))
    os.remove(tmp_path / 'HR' / 'linked')
    prepare = ['prepare_dataset.py', '--dataset', 'other', '--src', tmp_path / 'HR', '--out', tmp_path / 'p']
    assert call_script(*prepare).returncode == 0
    os.symlink(tmp_path / 'elsewhere' / 'private', tmp_path / 'HR' / 'river' / 'more')  # listed by a split file
    (tmp_path / 'p' / 'splits' / 'test.txt').write_text('river/more/private00.png\n')
    proc = call_script(*prepare)
    assert proc.returncode == 1 and 'river/more/private00.png: is a symbolic link out of' in proc.stderr


# --- 5: numbers -----------------------------------------------------------------------------------------------


RANGES = [
    (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'x', '--out', 'y', '--scales', 0]),
    (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'x', '--out', 'y', '--fractions', 1, 1, 0]),
    (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'x', '--out', 'y', '--fractions', -1, 1, 1]),
    (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'x', '--out', 'y', '--workers', 0]),
    (script_main('prepare_dataset.py'), ['--dataset', 'other', '--src', 'x', '--out', 'y', '--strength', 'nan']),
    (script_main('create_lmdb.py'), ['--input', 'x', '--output', 'y.lmdb', '--compress-level', 99]),
    (script_main('create_lmdb.py'), ['--input', 'x', '--output', 'y.lmdb', '--max-pixels', -1]),
    (script_main('create_lmdb.py'), ['--input', 'x', '--output', 'y.lmdb', '--workers', 0]),
    (script_main('extract_subimages.py'), ['--hr', 'x', '--out', 'y', '--crop-size', 0]),
    (script_main('extract_subimages.py'), ['--hr', 'x', '--out', 'y', '--thresh-size', -1]),
    (denoise.main, ['--input', 'x', '--output', 'y', '--method', 'nlm', '--strength', -5]),
    (denoise.main, ['--input', 'x', '--output', 'y', '--method', 'nlm', '--workers', 0]),
    (denoise.main, ['--input', 'x', '--output', 'y', '--method', 'nlm', '--nlm-template', 4]),
    (degrade.main, ['--input', 'x', '--output', 'y', '--scale', 0]),
    (degrade.main, ['--input', 'x', '--output', 'y', '--scale', 2, '--batch-size', 0]),
    (export.main, ['--arch', 'RSSRBicubic', '--output', 'y', '--scale', 0]),
    (export.main, ['--arch', 'RSSRBicubic', '--output', 'y', '--opset', 0]),
    (export.main, ['--arch', 'RSSRBicubic', '--output', 'y', '--tile', 0]),
    (export.main, ['--arch', 'RSSRBicubic', '--output', 'y', '--tile', 64, '--overlap', 64]),
    (inference.main, ['x', 'y', '--arch', 'RSSRBicubic', '--tile', 0]),
    (inference.main, ['x', 'y', '--arch', 'RSSRBicubic', '--batch-size', -1]),
    (inference.main, ['x', 'y', '--arch', 'RSSRBicubic', '--bands', 0, 1, 2]),
    (inference.main, ['x', 'y', '--arch', 'RSSRBicubic', '--max-pixels', 0]),
    (lam.main, ['--arch', 'RSSRBicubic', '--image', 'x', '--window', 0, 0, 4, '--output', 'y', '--kernel-size', 4]),
    (lam.main, ['--arch', 'RSSRBicubic', '--image', 'x', '--window', -1, 0, 4, '--output', 'y']),
    (lam.main, ['--arch', 'RSSRBicubic', '--image', 'x', '--window', 0, 0, 4, '--output', 'y', '--alpha', 1.5]),
    (benchmark.main, ['-opt', 'x', '--runs', 0]),
    (benchmark.main, ['-opt', 'x', '--input-size', 48, 0]),
]


@pytest.mark.parametrize('command, args', RANGES, ids=[' '.join(map(str, args[-2:])) for _, args in RANGES])
def test_22_every_cli_number_is_range_checked_in_one_line(command, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = call_main(command, *args)
    line = one_line(proc)
    assert proc.returncode == 2 and 'error:' in line and ('out of range' in line or 'must' in line or 'even' in line)
    assert os.listdir(tmp_path) == []


def test_22_scale_is_never_silently_replaced(tmp_path, hr):
    image = hr / 'forest' / 'forest00.png'
    proc = call_main(inference.main, image, tmp_path / 'x3', '--arch', 'RSSRBicubic', '--scale', 3, '--quiet')
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(tmp_path / 'x3' / 'forest00.png')).shape == (48, 48, 3)  # was x4, the arch's default
    args = ['--arch', 'RSSRBicubic', '--scale', 3, '--arch-args', '{"upscale": 2}', '--quiet']
    proc = call_main(inference.main, image, tmp_path / 'clash', *args)
    assert proc.returncode == 1 and '--scale 3 and --arch-args upscale: 2 disagree' in one_line(proc)


# --- 5: exports -----------------------------------------------------------------------------------------------


def _export_twice(tmp_path, *formats):
    args = ['--arch', 'EDSR', '--arch-args', TINY_EDSR, '--scale', 2, '--no-verify', '--formats', ','.join(formats)]
    for out in ('a', 'b'):
        assert call_main(export.main, *args, '--output', tmp_path / out).returncode == 0
    return args


def test_22_the_same_safetensors_export_twice_gives_the_same_bytes(tmp_path):
    _export_twice(tmp_path, 'safetensors')
    for name in ('model.json', 'model.safetensors'):  # safetensors wrote its metadata in hash order: other bytes
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name


@pytest.mark.slow  # three ONNX traces, about 35 s
def test_22_the_same_onnx_export_twice_gives_the_same_bytes_and_the_opset_asked_for(tmp_path):
    args = _export_twice(tmp_path, 'onnx')
    assert (tmp_path / 'a' / 'model.onnx').read_bytes() == (tmp_path / 'b' / 'model.onnx').read_bytes()
    proc = call_main(export.main, *args, '--output', tmp_path / 'c', '--opset', 11)
    assert proc.returncode == 1 and '--opset 11: the exporter cannot write EDSR in that opset' in one_line(proc)
    assert not (tmp_path / 'c' / 'model.onnx').exists()  # it wrote opset 18 and said 11 before


def test_22_bicubic_is_refused_by_the_onnx_export_in_one_line(tmp_path):
    proc = call_main(export.main, '--arch', 'RSSRBicubic', '--scale', 2, '--output', tmp_path / 'out')
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) <= 2  # the no-weights warning, the error
    assert one_line(proc).startswith('rssr-export: RSSRBicubic: cannot be exported to ONNX (')
    assert os.listdir(tmp_path / 'out') == []  # no safetensors half of the export either
