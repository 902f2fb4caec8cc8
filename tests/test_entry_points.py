"""BasicSR's own entry points with rssr installed: the start-up hook (``rssr-autoload.pth``), DDP validation.

Every command runs in a fresh interpreter, from a temporary directory and without PYTHONPATH, as a user types
it: rssr comes from its installation (editable during development), so these tests also check what
``pip install`` put in site-packages.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from tests.helpers.options import TINY_NETWORKS, dump, free_port, state_iters, tiny_train_options, write_pairs

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SITE = Path(sysconfig.get_path('purelib'))
BASICSR_DIR = Path(importlib.util.find_spec('basicsr').origin).parent


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'RSSR_NO_AUTOLOAD')}
    env.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', **extra)
    return env


def run(args, cwd, ok=True, **env):
    """Run ``args`` in ``cwd``; return stdout + stderr, asserting success (or failure when ``ok`` is False)."""
    proc = subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, f'{args} exited with {proc.returncode}:\n{out[-4000:]}'
    return out


def _train_options(folder, arch, name, total_iter=4, save_freq=2):
    opt = tiny_train_options(folder / 'data', name=name, total_iter=total_iter, save_freq=save_freq)
    opt['network_g'] = dict(TINY_NETWORKS[arch])
    return opt


def _models(exp_dir):
    return sorted(p.name for p in (exp_dir / 'models').iterdir())


def _nothing_written_to_site_packages():
    for folder in ('experiments', 'results', 'tb_logger'):
        assert not (SITE / folder).exists(), f'{SITE / folder} was written'


def test_hook_is_installed_and_light(tmp_path):
    pth = SITE / 'rssr-autoload.pth'
    assert pth.is_file(), f'{pth} is missing: reinstall rssr (pip install -e .)'
    assert pth.read_text().strip() == 'import rssr_autoload'
    record = next(SITE.glob('rssr-*.dist-info')) / 'RECORD'
    assert 'rssr-autoload.pth,' in record.read_text(), 'pip uninstall would leave the hook behind'

    probe = 'import sys; print(sorted(m for m in sys.modules if m.startswith(("rssr", "torch", "basicsr", "cv2"))))'
    probe += '; print([type(f).__name__ for f in sys.meta_path][:1])'
    # At start-up only the tiny hook module is imported, and its finder goes first.
    assert run([PYTHON, '-c', probe], tmp_path).split('\n')[:2] == ["['rssr_autoload']", "['BasicSRHook']"]
    off = run([PYTHON, '-c', probe], tmp_path, RSSR_NO_AUTOLOAD='1')
    assert 'BasicSRHook' not in off


REGISTERED = textwrap.dedent("""
    import sys
    import {first}
    import basicsr.train
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

    for registry, names in ((ARCH_REGISTRY, ['FAT', 'TSFNet', 'RSSRBicubic']),
                            (LOSS_REGISTRY, ['ExtremumVarianceLoss']),
                            (DATASET_REGISTRY, ['RSPairedDataset']), (MODEL_REGISTRY, ['RSSRModel'])):
        for name in names:
            assert name in registry, (name, registry._name)
    assert basicsr.train.load_resume_state.__module__ == 'rssr_patches.training'  # patch_basicsr() ran
    assert not any(type(f).__name__ == 'BasicSRHook' for f in sys.meta_path)  # done, off the import path
    print('registered')
""")


@pytest.mark.parametrize('first', ['basicsr', 'rssr_arch', 'rssr_data.degradations'])
def test_first_import_of_basicsr_registers_everything(tmp_path, first):
    """Whichever module comes first (BasicSR's, or an rssr package that imports BasicSR), all of rssr is set up."""
    assert 'registered' in run([PYTHON, '-c', REGISTERED.format(first=first)], tmp_path)


@pytest.mark.skipif(sys.version_info < (3, 11), reason='exception notes are Python 3.11+')
def test_a_failing_set_up_says_how_to_turn_it_off(tmp_path):
    code = "import rssr_patches; rssr_patches.PACKAGES = ('rssr_no_such_package',); import basicsr"
    out = run([PYTHON, '-c', code], tmp_path, ok=False)
    assert "No module named 'rssr_no_such_package'" in out and 'RSSR_NO_AUTOLOAD=1 turns that off' in out


def test_no_autoload_turns_it_off_and_explicit_registration_still_works(tmp_path):
    opt = dump(_train_options(tmp_path, 'FAT', 'off', total_iter=2), tmp_path / 'off.yml')
    out = run([PYTHON, '-m', 'basicsr.train', '-opt', opt], tmp_path, ok=False, RSSR_NO_AUTOLOAD='1')
    # BasicSR 1.4.2's own failure: the torchvision module it imports is gone (with an older torchvision: no FAT).
    assert "No module named 'torchvision.transforms.functional_tensor'" in out or "No object named 'FAT'" in out
    assert not (tmp_path / 'experiments').exists()

    # Our alias imports the registries explicitly, so it trains FAT all the same.
    run([PYTHON, str(REPO / 'scripts' / 'train.py'), '-opt', opt], tmp_path, RSSR_NO_AUTOLOAD='1')
    assert _models(tmp_path / 'experiments' / 'off') == ['net_g_2.pth', 'net_g_latest.pth']


def test_script_copy_gets_the_patches_and_keeps_user_edits():
    """``_parse_options`` hands a script copy of basicsr/train.py the patched functions, not over a user's own."""
    import basicsr.train

    import rssr_patches

    rssr_patches.import_registries()
    source = (BASICSR_DIR / 'train.py').read_text()
    edited = source.replace('device_id = torch.cuda.current_device()', 'device_id = 0  # my GPU')
    assert edited != source
    copies = {}
    # A checkout's copy with a line added at the top (line numbers shift), and one whose function was edited.
    for name, text in (('shifted', '# my checkout\n' + source), ('edited', edited)):
        copies[name] = {'__name__': name}  # not '__main__': defines the functions, starts nothing
        exec(compile(text, f'{name}/basicsr/train.py', 'exec'), copies[name])
        rssr_patches.entry._sync_script_copy(copies[name], basicsr.train)
    assert copies['shifted']['load_resume_state'] is basicsr.train.load_resume_state
    assert copies['shifted']['parse_options'] is basicsr.train.parse_options
    assert copies['edited']['load_resume_state'].__module__ == 'edited'  # theirs
    assert copies['edited']['load_resume_state'] is not basicsr.train.load_resume_state


def _checkout(folder):
    """A BasicSR source checkout as far as ``python basicsr/train.py`` needs: BasicSR's own train.py, unmodified."""
    root = folder / 'BasicSR'
    (root / 'basicsr').mkdir(parents=True)
    shutil.copy(BASICSR_DIR / 'train.py', root / 'basicsr' / 'train.py')
    return root


# Each entry point and each arch in the fast suite; the fourth pair only adds time.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    'entry, arch',
    [
        ('python -m basicsr.train', 'FAT'),
        ('python -m basicsr.train', 'TSFNet'),
        ('python basicsr/train.py', 'FAT'),
        pytest.param('python basicsr/train.py', 'TSFNet', marks=SLOW),
    ],
)
def test_basicsr_train_trains_saves_and_auto_resumes(tmp_path, entry, arch):
    if entry == 'python -m basicsr.train':
        cwd, command = tmp_path / 'work', [PYTHON, '-m', 'basicsr.train']
        cwd.mkdir()
    else:
        cwd, command = _checkout(tmp_path), [PYTHON, 'basicsr/train.py']
    opt = dump(_train_options(tmp_path, arch, f'tiny_{arch}'), tmp_path / 'tiny.yml')
    out = run([*command, '-opt', opt], cwd)
    exp = cwd / 'experiments' / f'tiny_{arch}'
    assert _models(exp) == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth']
    assert state_iters(exp) == [2, 4]
    if entry == 'python -m basicsr.train':  # BasicSR's root would be site-packages: we say where we write
        assert f'writing experiments/ under {cwd} instead' in out
    else:  # a checkout is its own root, as BasicSR documents
        assert 'writing experiments/' not in out
    _nothing_written_to_site_packages()

    out = run([*command, '-opt', opt, '--auto_resume', '--force_yml', 'train:total_iter=6'], cwd)
    assert 'Resuming training from epoch' in out and 'iter: 4.' in out
    assert state_iters(exp) == [2, 4, 6]
    assert torch.load(exp / 'training_states' / '6.state', weights_only=False)['iter'] == 6


def _psnr_of(network_opt, weights, folders):
    """Mean PSNR (RGB, border 4) of the network in ``weights`` on the pairs, computed here, in this process."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import imfrombytes, img2tensor, tensor2img
    from basicsr.utils.registry import ARCH_REGISTRY

    import rssr_arch  # noqa: F401

    net_opt = dict(network_opt)
    net = ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt).eval()
    net.load_state_dict(torch.load(weights)['params'])
    values = []
    for name in sorted(os.listdir(folders['HR'])):
        hr, lr = (imfrombytes(Path(folders[k], name).read_bytes(), float32=True) for k in ('HR', 'LR'))
        with torch.no_grad():
            sr = net(img2tensor(lr)[None])
        values.append(calculate_psnr(tensor2img(sr), tensor2img(img2tensor(hr)), crop_border=4))
    return sum(values) / len(values)


def test_basicsr_test_writes_the_psnr_log(tmp_path):
    from basicsr.utils.registry import ARCH_REGISTRY

    import rssr_arch  # noqa: F401

    network = dict(TINY_NETWORKS['FAT'])
    net_opt = dict(network)
    torch.manual_seed(1)
    net = ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt)
    weights = tmp_path / 'fat.pth'
    torch.save({'params': net.state_dict()}, weights)
    folders = write_pairs(tmp_path / 'data')
    dataset = dict(type='PairedImageDataset', filename_tmpl='{}', io_backend=dict(type='disk'))
    opt = dict(
        name='tiny_test',
        model_type='RSSRModel',
        scale=4,
        num_gpu=0,
        manual_seed=0,
        datasets=dict(test_1=dict(dataset, name='pairs', dataroot_gt=folders['HR'], dataroot_lq=folders['LR'])),
        network_g=network,
        path=dict(pretrain_network_g=str(weights), strict_load_g=True, param_key_g='params'),
        val=dict(save_img=True, suffix=None, metrics=dict(psnr=dict(type='calculate_psnr', crop_border=4))),
    )
    out = run([PYTHON, '-m', 'basicsr.test', '-opt', dump(opt, tmp_path / 'test.yml')], tmp_path)
    assert f'writing results/ under {tmp_path} instead' in out
    results = tmp_path / 'results' / 'tiny_test'
    (log,) = results.glob('test_tiny_test_*.log')
    line = next(line for line in log.read_text().splitlines() if '# psnr:' in line)
    assert float(line.split('# psnr:')[1].split()[0]) == pytest.approx(_psnr_of(network, weights, folders), abs=1e-4)
    assert len(list((results / 'visualization' / 'pairs').glob('*.png'))) == 4
    _nothing_written_to_site_packages()


def _bad_arch_type(opt):
    opt['network_g']['type'] = 'FATT'


def _bad_network_key(opt):
    opt['network_g']['num_blok'] = 2


def _bad_train_key(opt):
    opt['train']['pixle_opt'] = opt['train'].pop('pixel_opt')


@pytest.mark.parametrize(
    'spoil, expected',
    [
        (_bad_arch_type, ["network_g.type: no registered type named 'FATT'"]),
        (_bad_network_key, ['network_g.num_blok: FAT takes no such option', "'num_blocks'"]),
        (_bad_train_key, ["Unknown key(s) ['pixle_opt'] under `train`", 'Fix the spelling']),
    ],
)
def test_bad_options_get_clear_errors_through_basicsr(tmp_path, spoil, expected):
    opt = _train_options(tmp_path, 'FAT', 'bad')
    spoil(opt)
    out = run([PYTHON, '-m', 'basicsr.train', '-opt', dump(opt, tmp_path / 'bad.yml')], tmp_path, ok=False)
    for text in expected:
        assert text in out


@pytest.mark.parametrize(
    'entry, arch',
    [
        ('scripts/train.py', 'FAT'),
        ('-m basicsr.train', 'TSFNet'),
        pytest.param('scripts/train.py', 'TSFNet', marks=SLOW),
        pytest.param('-m basicsr.train', 'FAT', marks=SLOW),
    ],
)
def test_distributed_training_survives_validation_at_the_last_iteration(tmp_path, entry, arch):
    """Two CPU ranks (gloo); validation on rank 0 at the last iteration and after it, as BasicSR does."""
    opt = dump(_train_options(tmp_path, arch, 'ddp', total_iter=4, save_freq=4), tmp_path / 'ddp.yml')
    target = [str(REPO / 'scripts' / 'train.py')] if entry == 'scripts/train.py' else ['-m', 'basicsr.train']
    launch = [
        PYTHON,
        '-m',
        'torch.distributed.run',
        '--nproc_per_node=2',
        '--nnodes=1',
        f'--master_port={free_port()}',
    ]
    out = run([*launch, *target, '-opt', opt, '--launcher', 'pytorch'], tmp_path)
    assert out.count('Validation val') == 2
    # Rank 1 leaves while rank 0 validates; an undestroyed gloo group can abort it in interpreter shutdown.
    assert 'terminate called' not in out
    assert _models(tmp_path / 'experiments' / 'ddp') == ['net_g_4.pth', 'net_g_latest.pth']


def _link_farm(folder, skip):
    """A folder of links to this environment's site-packages entries, less those whose name starts with ``skip``."""
    folder.mkdir(parents=True)
    for entry in SITE.iterdir():
        if not entry.name.startswith(skip) and entry.suffix != '.pth':
            (folder / entry.name).symlink_to(entry)
    return folder


# Registered, and which rssr_compat (the wheel's, or the source tree's for an editable install).
WHERE_FROM = REGISTERED.format(first='basicsr') + 'import rssr_compat\nprint(rssr_compat.__file__)'


def _venv_python(code, venv, cwd):
    return run([str(venv / 'bin' / 'python'), '-c', textwrap.dedent(code)], cwd)


@pytest.mark.slow
def test_wheel_and_editable_installs_keep_the_hook(tmp_path):
    """A wheel built from the repo, then an editable install, each in a fresh venv, carry the working hook.

    The base interpreter has no torch, so the fresh venv (``python -m venv --without-pip``) gets its heavy
    dependencies from a ``deps.pth`` naming a folder (``deps/site-packages``, an install folder as far as
    rssr_compat can tell) of links to this environment's site-packages entries,
    less rssr's own files (and, for the first checks, less BasicSR). A folder named in a .pth goes on sys.path
    without its own .pth files being read, so only what pip installed into the fresh venv can hook anything.
    rssr is installed there by this environment's pip (``pip --python``), with no dependencies and no index.
    """
    src = tmp_path / 'src'
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            '.venv',
            '.git',
            '.ci-venv*',
            'build',
            'dist',
            '*.egg-info',
            '__pycache__',
            'experiments',
            'results',
            'datasets',
            'tb_logger',
            '.pytest_cache',
        ),
    )
    pip = [PYTHON, '-m', 'pip', '-q', '--disable-pip-version-check']
    run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', str(tmp_path / 'dist'), str(src)], tmp_path)
    (wheel,) = (tmp_path / 'dist').glob('rssr-*.whl')
    assert {'rssr-autoload.pth', 'rssr_autoload.py'} <= set(zipfile.ZipFile(wheel).namelist())

    venv = tmp_path / 'venv'
    run([PYTHON, '-m', 'venv', '--without-pip', str(venv)], tmp_path)
    venv_site = Path(
        run(
            [str(venv / 'bin' / 'python'), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'], tmp_path
        ).strip()
    )
    deps = _link_farm(tmp_path / 'deps' / 'site-packages', skip=('rssr', '__editable__', 'basicsr'))
    (venv_site / 'deps.pth').write_text(f'{deps}\n')
    run([*pip, '--python', str(venv / 'bin' / 'python'), 'install', '--no-deps', '--no-index', str(wheel)], tmp_path)
    assert (venv_site / 'rssr-autoload.pth').is_file()

    # Without BasicSR: torch imports, and `import basicsr` fails exactly as it would without rssr.
    out = _venv_python(
        f"""
        import sys
        assert type(sys.meta_path[0]).__name__ == 'BasicSRHook'
        import torch
        try:
            import basicsr
        except ModuleNotFoundError as error:
            assert error.name == 'basicsr' and str(error) == "No module named 'basicsr'", error
        else:
            raise AssertionError('basicsr imported')
        import rssr_autoload
        assert rssr_autoload.__file__.startswith({str(venv_site)!r}), rssr_autoload.__file__
        print('without basicsr: ok')
    """,
        venv,
        tmp_path,
    )
    assert 'without basicsr: ok' in out

    # With BasicSR: BasicSR's own entry point trains FAT from the wheel's rssr.
    for entry in BASICSR_DIR.parent.glob('basicsr*'):
        (deps / entry.name).symlink_to(entry)
    out = _venv_python(WHERE_FROM, venv, tmp_path)
    assert f'{venv_site}/rssr_compat.py' in out
    opt = dump(_train_options(tmp_path, 'FAT', 'wheel', total_iter=2), tmp_path / 'wheel.yml')
    run([str(venv / 'bin' / 'python'), '-m', 'basicsr.train', '-opt', opt], tmp_path)
    assert _models(tmp_path / 'experiments' / 'wheel') == ['net_g_2.pth', 'net_g_latest.pth']

    # Uninstalling removes the hook; an editable install (PEP 660) brings it back, pointing at the source tree.
    run([*pip, '--python', str(venv / 'bin' / 'python'), 'uninstall', '-y', 'rssr'], tmp_path)
    assert not (venv_site / 'rssr-autoload.pth').exists()
    editable = [*pip, '--python', str(venv / 'bin' / 'python'), 'install', '--no-deps', '--no-build-isolation']
    run([*editable, '-e', str(src)], tmp_path)
    assert (venv_site / 'rssr-autoload.pth').is_file()
    out = _venv_python(WHERE_FROM, venv, tmp_path)
    assert f'{src}/rssr_compat.py' in out
