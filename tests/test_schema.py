"""The typed option schema (rssr_utils.schema): one-line errors before anything is created, file arguments,
network sizes, YAML aliases, experiment names, BasicSR's own option files, rssr's old registry names,
sidecars, the published JSON Schema, and BasicSR's random streams and params fallback."""

import copy
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rssr_patches
from rssr_utils import schema
from rssr_utils.options import OptionError, check_options, load_options
from rssr_utils.states import read_training_state, rng_state
from tests.helpers.options import SUBPROCESS_ENV, dump, tiny_train_options

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / 'scripts' / 'train.py')]
BASICSR_FILES = sorted((REPO / 'tests' / 'data' / 'basicsr_options').glob('*.yml'))
BROKEN_UPSTREAM = {'train_EDVR_L_x4_SR_REDS.yml': 'network_g.ema_decay: EDVR takes no such option'}

rssr_patches.import_registries()


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)


def refused(opt, is_train=True):
    with pytest.raises(OptionError) as error:
        check_options(opt, is_train, source='bad.yml')
    return str(error.value)


@pytest.fixture
def tiny(tmp_path):
    return tiny_train_options(tmp_path / 'data')


# ---------------------------------------------------------------- types, ranges, unknown keys, names

BAD = {
    'gt_size 0': (lambda o: o['datasets']['train'].update(gt_size=0), 'datasets.train.gt_size: expected int >= 1'),
    'gt_size negative': (lambda o: o['datasets']['train'].update(gt_size=-16), 'datasets.train.gt_size: expected int'),
    'save freq 0': (lambda o: o['logger'].update(save_checkpoint_freq=0), 'logger.save_checkpoint_freq: expected int'),
    'val_freq 0': (lambda o: o['val'].update(val_freq=0), 'val.val_freq: expected int >= 1'),
    'total_iter -5': (lambda o: o['train'].update(total_iter=-5), 'train.total_iter: expected int >= 1, got -5'),
    'negative size': (lambda o: o['network_g'].update(num_feat=-8), 'network_g.num_feat: expected int >= 0'),
    'unknown top key': (lambda o: o.update(totla_iter=5), 'totla_iter: unknown key'),
    'unknown train key': (lambda o: o['train'].update(ema_decy=0.9), 'train.ema_decy: unknown key'),
    'unknown data key': (lambda o: o['datasets']['train'].update(use_flip=True), 'datasets.train.use_flip: unknown'),
    'unknown logger key': (lambda o: o['logger'].update(print_frq=1), 'logger.print_frq: unknown key'),
    'port range': (lambda o: o['dist_params'].update(port=70000), 'dist_params.port: expected int <= 65535'),
    'ema_decay 1': (lambda o: o['train'].update(ema_decay=1.0), 'train.ema_decay: expected float < 1'),
    'batch 0': (lambda o: o['datasets']['train'].update(batch_size_per_gpu=0), 'batch_size_per_gpu: expected int'),
    'name ..': (lambda o: o.update(name='..'), "name: '..' must be one folder name"),
    'name with /': (lambda o: o.update(name='../outside'), "name: '../outside' must be one folder name"),
    'absolute name': (lambda o: o.update(name='/tmp/x'), "name: '/tmp/x' must be one folder name"),
    'model type': (lambda o: o.update(model_type='SRModle'), "model_type: no model named 'SRModle'"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_value_is_one_line_naming_file_and_key(tiny, case):
    change, expected = BAD[case]
    opt = copy.deepcopy(tiny)
    change(opt)
    message = refused(opt)
    assert '\n' not in message and message.startswith('bad.yml: ') and expected in message, message


def test_integral_floats_are_ints_as_in_basicsr(tiny):
    tiny['logger']['save_checkpoint_freq'] = 2.0  # BasicSR's files write `!!float 5e3`
    tiny['train']['total_iter'] = 4.0
    check_options(tiny, is_train=True)
    assert tiny['logger']['save_checkpoint_freq'] == 2 and type(tiny['logger']['save_checkpoint_freq']) is int
    assert type(tiny['train']['total_iter']) is int
    tiny['train']['total_iter'] = 4.5
    assert 'train.total_iter: expected int, got float 4.5' in refused(tiny)


def test_bad_file_stops_training_before_experiments_exist(tmp_path, tiny):
    tiny['name'] = '../escape'
    tiny['train']['total_iter'] = -5
    tiny['datasets']['train']['gt_size'] = 0
    proc = run([*TRAIN, '-opt', dump(tiny, tmp_path / 'bad.yml')], tmp_path)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    for key in ('name: ', 'train.total_iter: ', 'datasets.train.gt_size: '):
        assert f'bad.yml: {key}' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'escape').exists()


# ---------------------------------------------------------------- file arguments and network sizes

SPYNET = {'type': 'SpyNet', 'load_path': '/etc/hostname'}


def test_file_arguments_need_the_trusted_run_key(tiny):
    tiny['network_g'] = dict(SPYNET)
    message = refused(tiny)
    assert "network_g.load_path: '/etc/hostname' names a file that SpyNet would read" in message
    assert 'allow_file_arguments: true' in message
    tiny['network_g'] = {'type': 'BasicVSR', 'num_feat': 8, 'num_block': 1, 'spynet_path': 'experiments/x/../../y.pth'}
    assert 'network_g.spynet_path' in refused(tiny)
    tiny['network_g'] = {'type': 'VGGFeatureExtractor', 'layer_name_list': ['relu1_1']}
    assert 'network_g.type: VGGFeatureExtractor downloads weights' in refused(tiny)
    tiny['train']['perceptual_opt'] = {'type': 'RSSRVGGFeatureLoss', 'vgg_path': '/somewhere/vgg.pth'}
    tiny['network_g'] = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 4}
    assert 'train.perceptual_opt.vgg_path' in refused(tiny)
    tiny['allow_file_arguments'] = True  # a trusted local run: the user says so in the file
    check_options(tiny, is_train=True)


def test_basicsr_pretrained_models_folder_is_allowed(tiny):
    path = 'experiments/pretrained_models/flownet/spynet_sintel_final-3d2a1287.pth'  # as BasicSR's own files
    tiny['network_g'] = {'type': 'BasicVSR', 'num_feat': 8, 'num_block': 1, 'spynet_path': path}
    tiny['datasets']['train']['type'] = tiny['datasets']['val']['type'] = 'PairedImageDataset'
    check_options(tiny, is_train=True)


@pytest.mark.parametrize(
    'network, expected',
    [
        ({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4096, 'num_block': 64}, 'parameters'),
        ({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 1, 'num_block': 20000}, '10,000 layers'),
        ({'type': 'TSFNet', 'upscale': 4, 'num_block': 10**9}, 'network_g.num_block: expected int <= 1024'),
        ({'type': 'TSFNet', 'upscale': 4, 'num_block': 1e9}, 'network_g.num_block: expected int <= 1024'),
    ],
    ids=['wide', 'deep', 'huge int', 'huge float'],
)
def test_network_size_is_bounded_before_allocation(tiny, network, expected):
    tiny['network_g'] = network
    message = refused(tiny)
    assert '\n' not in message and expected in message and 'network_g' in message, message


def test_every_builder_checks_the_network(tmp_path):
    from rssr_utils.weights import build_network, model_options

    with pytest.raises(OptionError, match='network_g.num_feat: expected int, got str'):
        build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': '64'})
    with pytest.raises(OptionError, match='load_path'):
        build_network(dict(SPYNET))
    opt = tmp_path / 'infer.yml'
    opt.write_text(json.dumps({'name': 'x', 'model_type': 'SRModel', 'network_g': SPYNET}))
    with pytest.raises(OptionError, match=r'infer\.yml: network_g\.load_path'):
        model_options(opt)  # -opt of rssr-infer / benchmark / LAM / export


# ---------------------------------------------------------------- sidecars


def sidecar(tmp_path, network, **extra):
    weights = tmp_path / 'model.safetensors'
    weights.write_bytes(b'')
    body = {'format': 'rssr-model', 'network_g': network, 'scale': 4, **extra}
    (tmp_path / 'model.json').write_text(json.dumps(body))
    return weights


@pytest.mark.parametrize(
    'network, expected',
    [
        (SPYNET, 'network_g.load_path'),
        ({'type': 'DFDNet', 'num_feat': 8, 'dict_path': 'experiments/pretrained_models/dict.pth'}, 'DFDNet downloads'),
        ({'type': 'TSFNet', 'num_block': 100000}, 'network_g.num_block'),
        ({'type': 'EDSR', 'num_feat': 'many'}, 'network_g.num_feat: expected int'),
    ],
    ids=['file', 'download', 'size', 'type'],
)
def test_sidecar_is_checked_and_never_trusted(tmp_path, network, expected):
    from rssr_utils.weights import build_model

    weights = sidecar(tmp_path, network, allow_file_arguments=True)  # never honoured from a sidecar
    with pytest.raises(OptionError) as error:
        build_model(None, weights)
    assert str(error.value).startswith(f'{tmp_path / "model.json"}: ') and expected in str(error.value)


# ---------------------------------------------------------------- YAML aliases

BOMB = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + ''.join(
    f'{b}: &{b} [{", ".join([f"*{a}"] * 10)}]\n' for a, b in zip('abcdefgh', 'bcdefghi')
)


def test_alias_bomb_is_refused_in_option_files_and_degradation_configs(tmp_path):
    from rssr_data.degradation_draws import ConfigError, load_config

    path = tmp_path / 'bomb.yml'
    path.write_text(BOMB)
    assert len(BOMB) < 2048
    with pytest.raises(OptionError, match=r'bomb\.yml, line \d+: .*aliases expand to more than'):
        load_options(path)
    with pytest.raises(ConfigError, match=r'bomb\.yml.*aliases expand'):
        load_config(str(path))
    path.write_text('base: &b {type: disk}\ntrain: {io_backend: *b}\nval: {io_backend: *b}\n')  # fine
    assert load_options(path)['val']['io_backend'] == {'type': 'disk'}


def test_degradation_config_types_and_ranges():
    from rssr_data.degradation_draws import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"noise_range: expected list, got str '1-3'"):
        load_config({'noise_range': '1-3'})
    with pytest.raises(ConfigError, match=r'sinc_prob: expected float <= 1'):
        load_config({'sinc_prob': 1.5})
    with pytest.raises(ConfigError, match=r"kernel_list\[0\]: 'gauss' is not allowed"):
        load_config({'kernel_list': ['gauss']})
    assert load_config({'blur_kernel_size': 21.0})['blur_kernel_size'] == 21


# ---------------------------------------------------------------- a good guest in BasicSR


@pytest.mark.parametrize('path', BASICSR_FILES, ids=lambda p: p.name)
def test_basicsr_own_option_files_parse(path):
    opt = load_options(path, ordered=True)
    if path.name in BROKEN_UPSTREAM:
        assert BROKEN_UPSTREAM[path.name] in refused(opt, path.name.startswith('train'))
        return
    check_options(opt, is_train=path.name.startswith('train'), source=str(path))
    if 'logger' in opt:
        assert type(opt['logger']['save_checkpoint_freq']) is int


def test_old_registry_names_work_with_a_notice(tiny, capsys):
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY

    from rssr_utils.weights import arch_class

    for old, new in schema.OLD_NAMES.items():
        assert old not in ARCH_REGISTRY and old not in DATASET_REGISTRY and old not in LOSS_REGISTRY
        assert any(new in r for r in (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY))
    tiny['datasets']['train'] = {**tiny['datasets']['train'], 'type': 'UCMercedDataset', 'root': 'data'}
    for key in ('dataroot_gt', 'dataroot_lq', 'filename_tmpl'):
        tiny['datasets']['train'].pop(key)
    check_options(tiny, is_train=True, source='old.yml')
    assert tiny['datasets']['train']['type'] == 'RSSRUCMercedDataset'
    err = capsys.readouterr().err
    assert "old.yml: datasets.train.type 'UCMercedDataset' is now 'RSSRUCMercedDataset'" in err
    assert arch_class('Bicubic').__name__ == 'RSSRBicubic'
    assert len([line for line in capsys.readouterr().err.splitlines() if 'is now' in line]) == 1


def test_ema_fine_tune_from_a_params_only_checkpoint(tmp_path):
    from basicsr.archs.srresnet_arch import MSRResNet

    checkpoint = tmp_path / 'params_only.pth'
    torch.save({'params': MSRResNet(num_feat=8, num_block=1, upscale=4).state_dict()}, checkpoint)
    opt = tiny_train_options(tmp_path / 'data', name='ema', total_iter=2, ema_decay=0.5)
    opt['path']['pretrain_network_g'] = str(checkpoint)
    proc = run([*TRAIN, '-opt', dump(opt, tmp_path / 'ema.yml')], tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "has no 'params_ema' entry; using 'params'" in log
    assert read_training_state(tmp_path / 'experiments' / 'ema' / 'training_states' / '2.state')['iter'] == 2


# ---------------------------------------------------------------- random streams


def test_validation_draws_what_plain_basicsr_draws(tmp_path):
    """rssr's validation patch against BasicSR's own validation, from the same random states."""
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.models.base_model import BaseModel

    from rssr_patches import entry

    opt = tiny_train_options(tmp_path / 'data')
    opt.update(is_train=False, dist=False, rank=0, world_size=1)
    opt['path'].update(visualization=str(tmp_path / 'vis'))
    val = dict(opt['datasets']['val'], phase='val', scale=4)
    loader = build_dataloader(build_dataset(val), val, num_gpu=0, dist=False)
    model = build_model(opt)

    def after(validation):
        torch.manual_seed(1), random.seed(1), np.random.seed(1)
        before = torch.get_rng_state()
        validation(model, loader, 2, None, False)
        return before, rng_state()

    assert BaseModel.validation is entry._validation
    before, ours = after(BaseModel.validation)
    _, plain = after(entry._ORIGINAL['validation'])
    assert not torch.equal(before, plain['torch'])  # BasicSR's validation draws from the global RNG
    assert torch.equal(ours['torch'], plain['torch']) and ours['python'] == plain['python']
    assert torch.equal(ours['numpy']['key'], plain['numpy']['key'])


RECORDING_DRIVER = """
import torch
import rssr_apps.cli
import rssr_patches.training as training

finish = training.finish_pending_state

def recording(model, current_iter):
    torch.save(torch.get_rng_state(), f'after_val_{current_iter}.pt')
    return finish(model, current_iter)

training.finish_pending_state = recording
rssr_apps.cli.train()
"""


def test_state_saved_where_validation_runs_holds_the_states_after_it(tmp_path):
    driver = tmp_path / 'driver.py'
    driver.write_text(RECORDING_DRIVER)
    opt = dump(tiny_train_options(tmp_path / 'data', name='rng', total_iter=2, save_freq=2), tmp_path / 'rng.yml')
    proc = run([sys.executable, str(driver), '-opt', opt], tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    state = read_training_state(tmp_path / 'experiments' / 'rng' / 'training_states' / '2.state')
    assert torch.equal(state['rng']['torch'], torch.load(tmp_path / 'after_val_2.pt'))


# ---------------------------------------------------------------- the published JSON Schema


def test_committed_json_schema_is_fresh():
    import basicsr

    committed = (REPO / schema.SCHEMA_FILE).read_text(encoding='utf-8')
    made_with = json.loads(committed)['$comment']
    here = f'torch {torch.__version__.split("+")[0]}, basicsr {basicsr.__version__}'
    if here not in made_with:
        pytest.skip(f'the committed schema was made with other versions ({made_with}); this is {here}')
    # In a fresh interpreter: other tests register their own test networks in this process's registries.
    fresh = subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'make_schema.py'), '--check'],
        cwd=REPO,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, 'run python scripts/make_schema.py and commit the result: ' + fresh.stderr[-500:]


def test_shipped_option_files_reference_the_schema():
    header = '# yaml-language-server: $schema=./schema/rssr-options.schema.json'
    assert (REPO / 'options' / 'schema' / 'rssr-options.schema.json').is_file()
    for path in sorted((REPO / 'options').glob('*.yml')):
        if not path.name.startswith('benchmark_'):  # benchmark files list models, not one option file
            assert path.read_text().splitlines()[0] == header, path.name
