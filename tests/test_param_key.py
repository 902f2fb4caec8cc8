"""One checkpoint, one tensor: inference, the benchmark and BasicSR's test pipeline read the same entry.

The checkpoint holds ``params`` and ``params_ema`` with different values; for each
``param_key`` choice the three paths must produce the output of that entry's
weights (computed here with ``load_state_dict``, without the loader), and an
entry the file lacks must be an error that lists the entries it has.
"""

import rssr_compat  # noqa: F401

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils import img2tensor, tensor2img

import rssr_patches
from rssr_apps.benchmark.models import build_benchmark_model, model_spec, super_resolve
from rssr_apps.inference import main as infer_main
from rssr_utils.weights import WeightsError
from tests.helpers.options import pytorch_init, run_test_script

SCALE = 4
NETWORK = dict(type='MSRResNet', num_feat=8, num_block=1, upscale=SCALE)
KEYS = ('params', 'params_ema')


def random_state(seed):
    """MSRResNet weights with PyTorch's default conv init (MSRResNet's own x0.1 init makes outputs alike)."""
    rssr_patches.import_registries()
    torch.manual_seed(seed)
    return pytorch_init(build_network(dict(NETWORK))).state_dict()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Checkpoints, one LR/HR pair, a test option file, and the expected SR image of each entry."""
    root = tmp_path_factory.mktemp('param_key')
    states = {key: random_state(seed) for seed, key in enumerate(KEYS, 1)}
    assert not torch.equal(states['params']['conv_first.weight'], states['params_ema']['conv_first.weight'])
    torch.save(states, root / 'both.pth')
    torch.save({'params': states['params']}, root / 'params_only.pth')
    rng = np.random.default_rng(0)
    lr = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (16, 12), interpolation=cv2.INTER_CUBIC)
    for sub, img in (('LR', lr), ('HR', cv2.resize(lr, (16 * SCALE, 12 * SCALE)))):
        (root / sub).mkdir()
        cv2.imwrite(str(root / sub / 'scene.png'), img)
    expected = {}
    for key, state in states.items():
        net = build_network(dict(NETWORK)).eval()
        net.load_state_dict(state)
        with torch.no_grad():
            expected[key] = tensor2img(net(img2tensor(lr / 255.0, float32=True)[None]))  # BGR uint8
    assert np.abs(expected['params'].astype(int) - expected['params_ema'].astype(int)).max() > 20
    return root, expected


def write_option_file(root, name, weights, key):
    opt = dict(
        name=name,
        model_type='RSSRModel',
        scale=SCALE,
        num_gpu=0,
        manual_seed=0,
        datasets=dict(
            test_1=dict(
                name='scene',
                type='RSPairedDataset',
                dataroot_gt=str(root / 'HR'),
                dataroot_lq=str(root / 'LR'),
                io_backend=dict(type='disk'),
            )
        ),
        network_g=NETWORK,
        path=dict(pretrain_network_g=str(root / weights), strict_load_g=True, param_key_g=key),
        val=dict(save_img=True, suffix='sr'),
    )
    path = root / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def assert_is(img, expected, key):
    """``img`` is the output of ``key``'s weights (up to 8-bit rounding), not the other entry's."""
    other = next(k for k in KEYS if k != key)
    assert img.shape == expected[key].shape
    assert np.abs(img.astype(int) - expected[key].astype(int)).max() <= 1
    assert np.abs(img.astype(int) - expected[other].astype(int)).max() > 20


@pytest.mark.parametrize('key', KEYS)
def test_inference_benchmark_and_test_pipeline_load_the_same_entry(setup, key):
    root, expected = setup
    opt_file = write_option_file(root, f'same_{key}', 'both.pth', key)

    # Scene inference (rssr-infer / scripts/infer.py): --param-key, and the option file's param_key_g.
    arch_args = ['--arch', 'MSRResNet', '--arch-args', '{"num_feat": 8, "num_block": 1, "upscale": 4}']
    for name, args in (
        ('arch', [*arch_args, '--weights', str(root / 'both.pth'), '--param-key', key]),
        ('opt', ['-opt', str(opt_file)]),
    ):
        out_dir = root / f'infer_{key}_{name}'
        infer_main([str(root / 'LR' / 'scene.png'), str(out_dir), *args, '--device', 'cpu', '--quiet'])
        assert_is(cv2.imread(str(out_dir / 'scene.png')), expected, key)

    # The benchmark, given the same option file (`opt:` entry).
    net, status, _ = build_benchmark_model(model_spec({'opt': str(opt_file)}))
    assert status == 'trained'
    state = torch.load(root / 'both.pth', weights_only=True)[key]
    assert net.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    lq = img2tensor(cv2.imread(str(root / 'LR' / 'scene.png')) / 255.0, float32=True)[None]
    with torch.no_grad():
        assert_is(tensor2img(super_resolve(net, lq, SCALE)), expected, key)

    # BasicSR's test pipeline (scripts/test.py -> BaseModel.load_network, patched to rssr_utils.weights).
    proc = run_test_script(opt_file, root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'with param key: [{key}]' in proc.stdout + proc.stderr
    saved = root / 'results' / f'same_{key}' / 'visualization' / 'scene' / 'scene_sr.png'
    assert_is(cv2.imread(str(saved)), expected, key)


def test_an_absent_entry_is_an_error_listing_the_entries(setup):
    root, _ = setup
    listed = "has no 'params_ema' entry; it holds ['params']"
    opt_file = write_option_file(root, 'absent', 'params_only.pth', 'params_ema')

    with pytest.raises(SystemExit) as error:  # rssr-infer exits with the message
        infer_main([str(root / 'LR' / 'scene.png'), str(root / 'infer_absent'), '-opt', str(opt_file), '--quiet'])
    assert listed in str(error.value) and 'param_key_g' in str(error.value)
    assert not (root / 'infer_absent' / 'scene.png').exists()

    with pytest.raises(WeightsError, match=listed.replace('[', r'\[').replace(']', r'\]')):
        build_benchmark_model(model_spec({'opt': str(opt_file)}))

    # BasicSR's own pipeline falls back from a missing params_ema to params, with a notice, as plain BasicSR does.
    proc = run_test_script(opt_file, root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "has no 'params_ema' entry; using 'params'" in out, out[-3000:]
