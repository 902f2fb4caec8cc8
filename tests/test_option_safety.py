"""Option files and --force_yml: no code runs from them, and every bad option is named at start-up."""

import copy
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml

import rssr_patches
from rssr_utils.options import OptionError, apply_force_yml, check_options, load_options, load_yaml
from tests.helpers.options import SUBPROCESS_ENV, dump, tiny_train_options

REPO = Path(__file__).resolve().parents[1]
OPTIONS = sorted(p for p in (REPO / 'options').glob('*.yml') if not p.name.startswith('benchmark_'))

rssr_patches.import_registries()


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)


def payload_file(tmp_path, marker):
    """An option file whose `name` asks PyYAML's unsafe loader to run a command that creates ``marker``."""
    path = tmp_path / 'hostile.yml'
    base = (REPO / 'options' / 'test_fat_x4.yml').read_text()
    body = '\n'.join(line for line in base.splitlines() if not line.startswith('name:'))
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n{body}\n')
    return path


COMMANDS = {
    'train': lambda opt, out: [sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', opt],
    'test': lambda opt, out: [sys.executable, str(REPO / 'scripts' / 'test.py'), '-opt', opt],
    'infer': lambda opt, out: [
        sys.executable,
        str(REPO / 'scripts' / 'infer.py'),
        f'{out}/in',
        f'{out}/sr',
        '-opt',
        opt,
    ],
    'benchmark': lambda opt, out: [sys.executable, str(REPO / 'scripts' / 'benchmark.py'), '-opt', opt],
    'demo': lambda opt, out: [sys.executable, str(REPO / 'scripts' / 'demo.py'), '-opt', opt],
}


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_yaml_payload_runs_no_code_in_any_command(tmp_path, command):
    marker = tmp_path / 'pwned'
    opt = payload_file(tmp_path, marker)
    (tmp_path / 'in').mkdir()  # scenes to infer: apart from the output folder, which rssr-infer checks first
    proc = run(COMMANDS[command](str(opt), str(tmp_path)), tmp_path)
    assert proc.returncode != 0
    assert not marker.exists()
    assert f'{opt}, line 1' in proc.stderr and '!!python/object/apply:os.system was refused' in proc.stderr, (
        proc.stderr[-2000:]
    )


def test_basicsr_loader_is_the_safe_one_and_keeps_order(tmp_path):
    from basicsr.utils.options import _postprocess_yml_value, ordered_yaml

    marker = tmp_path / 'pwned'
    with pytest.raises(yaml.YAMLError):
        yaml.load(f'name: !!python/object/apply:os.system ["touch {marker}"]', Loader=ordered_yaml()[0])
    assert not marker.exists()
    loaded = yaml.load('b: 1\na: {z: 2, y: 3}\n', Loader=ordered_yaml()[0])
    assert isinstance(loaded, OrderedDict) and list(loaded) == ['b', 'a'] and list(loaded['a']) == ['z', 'y']
    assert _postprocess_yml_value('[__import__("os").system("true")]') == ['__import__("os").system("true")']


@pytest.mark.parametrize(
    'entry',
    [
        # BasicSR eval()s values starting with '[' ...
        'name=[__import__("os").system("touch {marker}")]',
        # ... and exec()s 'opt["k1"]["k2"]=value' built from the keys.
        'train"][__import__("os").system("touch {marker}")]["x:y=1',
    ],
    ids=['value', 'key'],
)
def test_force_yml_payload_runs_no_code(tmp_path, entry):
    marker = tmp_path / 'pwned'
    opt = dump(tiny_train_options(tmp_path / 'data'), tmp_path / 'tiny.yml')
    args = [sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', opt, '--force_yml', entry.format(marker=marker)]
    proc = run(args, tmp_path)
    assert proc.returncode != 0 and not marker.exists()
    assert '--force_yml' in proc.stderr or 'name: expected str' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'experiments').exists()


def test_force_yml_values_are_yaml_values():
    opt = {'name': 'x', 'train': {'optim_g': {'lr': 1e-3}}, 'path': {'resume_state': 'a'}, 'network_g': {}}
    apply_force_yml(
        opt,
        [
            'train:total_iter=6',
            'train:optim_g:lr=!!float 2e-4',
            'network_g:window_size=[4, 8]',
            'path:resume_state=none',
            'name=a=b',
            'train:use=false',
        ],
    )
    assert opt['train'] == {'optim_g': {'lr': 2e-4}, 'total_iter': 6, 'use': False}
    assert opt['network_g'] == {'window_size': [4, 8]} and opt['path']['resume_state'] is None and opt['name'] == 'a=b'
    with pytest.raises(OptionError, match='no section trian'):
        apply_force_yml(opt, ['trian:total_iter=5'])
    with pytest.raises(OptionError, match='expected key:subkey=value'):
        apply_force_yml(opt, ['train:total_iter'])


def test_option_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / 'dup.yml'
    path.write_text('name: a\nscale: 4\nname: b\n')
    with pytest.raises(OptionError, match=r"dup\.yml, line 3: .*'name' twice"):
        load_options(path)
    path.write_text('- a list\n')
    with pytest.raises(OptionError, match=r'dup\.yml: an option file is a YAML mapping'):
        load_options(path)
    with pytest.raises(OptionError, match=r'missing\.yml: cannot read'):
        load_options(tmp_path / 'missing.yml')
    assert list(load_yaml('z: 1\na: 2\n')) == ['z', 'a']


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize('path', OPTIONS, ids=lambda p: p.name)
def test_shipped_option_files_pass_the_checks(path):
    opt = load_options(path)
    check_options(opt, is_train='train' in opt, source=str(path))


def rs_tiny(tmp_path):
    """The tiny training options with rssr's own data set and FAT, as a user would write them."""
    opt = tiny_train_options(tmp_path / 'data')
    for dataset in opt['datasets'].values():
        dataset['type'] = 'RSPairedDataset'
        dataset.pop('filename_tmpl')
    opt['network_g'] = {'type': 'FAT', 'upscale': 4, 'embed_dim': 16, 'num_blocks': 1, 'depth': 1, 'num_heads': 2}
    opt['train']['local_opt'] = {'type': 'ExtremumVarianceLoss', 'loss_weight': 0.1}
    return opt


def problem(opt, is_train=True):
    with pytest.raises(OptionError) as error:
        check_options(opt, is_train, source='bad.yml')
    return str(error.value)


BAD = {
    'string lr': (
        lambda o: o['train']['optim_g'].update(lr='2e-4'),
        "train.optim_g.lr: expected float, got str '2e-4'",
    ),
    'string embed_dim': (
        lambda o: o['network_g'].update(embed_dim='64'),
        "network_g.embed_dim: expected int, got str '64'",
    ),
    'string loss_weight': (
        lambda o: o['train']['pixel_opt'].update(loss_weight='1.0'),
        "train.pixel_opt.loss_weight: expected float, got str '1.0'",
    ),
    'string loss_weight (ours)': (
        lambda o: o['train']['local_opt'].update(loss_weight='0.1'),
        "train.local_opt.loss_weight: expected float, got str '0.1'",
    ),
    'string gt_size': (
        lambda o: o['datasets']['train'].update(gt_size='16'),
        "datasets.train.gt_size: expected int, got str '16'",
    ),
    'string scale': (lambda o: o.update(scale='4'), "scale: expected int, got str '4'"),
    "use_hflip: 'no'": (
        lambda o: o['datasets']['train'].update(use_hflip='no'),
        "datasets.train.use_hflip: expected bool, got str 'no'",
    ),
    'missing dataroot_gt': (lambda o: o['datasets']['train'].pop('dataroot_gt'), 'datasets.train.dataroot_gt: missing'),
    'missing dataroot_lq': (lambda o: o['datasets']['val'].pop('dataroot_lq'), 'datasets.val.dataroot_lq: missing'),
    'missing type': (lambda o: o['datasets']['train'].pop('type'), 'datasets.train.type: missing'),
    'missing gt_size': (lambda o: o['datasets']['train'].pop('gt_size'), 'datasets.train.gt_size: missing'),
    'missing network type': (lambda o: o['network_g'].pop('type'), 'network_g.type: missing'),
    'unknown arch': (
        lambda o: o['network_g'].update(type='FATT'),
        "network_g.type: no registered type named 'FATT'; registered: [",
    ),
    'unknown network option': (
        lambda o: o['network_g'].update(embed_dims=8),
        'network_g.embed_dims: FAT takes no such option',
    ),
    'upscale vs scale': (lambda o: o['network_g'].update(upscale=8), 'network_g.upscale is 8 but scale is 4'),
    'default upscale vs scale': (
        lambda o: (o['network_g'].pop('upscale'), o.update(scale=8)),
        "network_g.upscale is 4 (FAT's default) but scale is 8",
    ),
    'list element': (
        lambda o: o['network_g'].update(window_size=[4, 'a']),
        "network_g.window_size[1]: expected int, got str 'a'",
    ),
    'milestones': (
        lambda o: o['train']['scheduler'].update(milestones=100),
        'train.scheduler.milestones: expected list, got int 100',
    ),
    'unknown optimizer': (
        lambda o: o['train']['optim_g'].update(type='Adamm'),
        "train.optim_g.type: no registered type named 'Adamm'",
    ),
    'missing total_iter': (lambda o: o['train'].pop('total_iter'), 'train.total_iter: missing'),
    'gt_size vs scale': (
        lambda o: o['datasets']['train'].update(gt_size=18),
        'datasets.train.gt_size: 18 is not a multiple of scale 4',
    ),
    'metric option': (
        lambda o: o['val']['metrics']['psnr'].update(crop_border='4'),
        "val.metrics.psnr.crop_border: expected int, got str '4'",
    ),
    'num_gpu': (lambda o: o.update(num_gpu='all'), "num_gpu: 'all' is not allowed; use one of ['auto']"),
}


def test_tiny_options_pass(tmp_path):
    opt = rs_tiny(tmp_path)
    check_options(opt, is_train=True)
    opt['val'] = None  # no validation: no val_freq needed
    check_options(opt, is_train=True)


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_option_is_named(tmp_path, case):
    change, expected = BAD[case]
    opt = copy.deepcopy(rs_tiny(tmp_path))
    change(opt)
    message = problem(opt)
    assert '\n' not in message and message.startswith('bad.yml: ') and expected in message, message


def test_preset_data_sets_get_their_folders_and_crop_from_root(tmp_path):
    opt = rs_tiny(tmp_path)
    train = opt['datasets']['train']
    for key in ('dataroot_gt', 'dataroot_lq', 'gt_size'):
        train.pop(key)
    train.update(type='RSSRUCMercedDataset', root=str(tmp_path))  # root gives the folders, the preset gt_size 256
    check_options(opt, is_train=True)
    train.pop('root')
    assert 'datasets.train.dataroot_gt: missing' in problem(opt)


def test_training_stops_before_the_first_iteration_naming_every_bad_key(tmp_path):
    opt = rs_tiny(tmp_path)
    opt['network_g']['embed_dim'] = '16'
    opt['datasets']['train']['use_hflip'] = 'no'
    path = dump(opt, tmp_path / 'bad.yml')
    proc = run([sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', path], tmp_path)
    assert proc.returncode != 0
    assert "network_g.embed_dim: expected int, got str '16'" in proc.stderr
    assert "datasets.train.use_hflip: expected bool, got str 'no'" in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'experiments').exists()
