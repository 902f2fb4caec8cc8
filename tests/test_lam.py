"""Local attribution maps (rssr_apps.lam): completeness, DI, batching, padding, the command and its errors."""

import csv
import json
import os

import rssr_compat  # noqa: F401

import cv2
import numpy as np
import pytest
import torch
import yaml

from rssr_apps.lam import diffusion_index, gini, main, path_attribution
from rssr_apps.lam.core import blur_path, gaussian_kernel, window_gradient_objective
from rssr_utils.weights import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a loaded shared CPU two OpenMP threads can be many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


EDSR_TINY = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1}


def _image(h, w):
    """A smooth deterministic RGB test image (3, h, w) in [0.1, 0.9]."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * xx + 3 * yy), np.cos(5 * yy), 2 * xx * yy - 1]) * 0.4 + 0.5
    return torch.tensor(img, dtype=torch.float32)


def _net(network_g, seed=0):
    torch.manual_seed(seed)
    return build_model(network_g)


def test_blur_path_ends_at_the_image_and_starts_at_the_blurred_baseline():
    img = _image(12, 14)
    path = blur_path(img, sigma=1.2, steps=5, kernel_size=9)
    assert path.shape == (6, 3, 12, 14)
    torch.testing.assert_close(path[-1], img)  # sigma 0 (+1e-5): a delta kernel
    # The baseline is OpenCV's filter2D (BORDER_REFLECT_101) with the LAM tool's kernel at sigma 1.2.
    expected = cv2.filter2D(img.numpy().transpose(1, 2, 0), -1, gaussian_kernel(9, 1.2).numpy())
    np.testing.assert_allclose(path[0].numpy().transpose(1, 2, 0), expected, atol=1e-6)


def test_objective_is_the_window_gradient_magnitude_and_has_finite_gradients_on_flat_output():
    sr = torch.zeros(2, 3, 10, 10)
    sr[1, :, 4, 4] = 1.0
    assert window_gradient_objective(sr, (2, 2, 4)).tolist() == [0.0, pytest.approx(3 * (2 + 2**0.5))]
    flat = torch.zeros(1, 3, 10, 10, requires_grad=True)  # sqrt at 0: the derivative is taken as 0, not NaN
    (grad,) = torch.autograd.grad(window_gradient_objective(flat, (0, 0, 5)).sum(), flat)
    assert torch.isfinite(grad).all() and not grad.any()


def test_completeness_error_shrinks_with_steps():
    """sum(attribution) -> objective(input) - objective(baseline), with a right Riemann sum error O(1/steps)."""
    net = _net({**EDSR_TINY, 'upscale': 2})
    img = _image(16, 16)
    errors = []
    for steps in (4, 16, 64):
        result = path_attribution(net, img, (8, 8, 8), steps=steps, batch=64, net=net)
        gap = result.objective - result.baseline_objective
        assert result.attribution.shape == (3, 16, 16) and abs(gap) > 0.1
        assert result.path_objectives[0] == result.baseline_objective and result.path_objectives[-1] == result.objective
        errors.append(abs(result.attribution.sum() - gap) / abs(gap))
    assert errors[1] < errors[0] / 2 and errors[2] < errors[1] / 2, errors
    assert errors[2] < 2e-3, errors
    assert all(p.requires_grad for p in net.parameters())  # switched off only while attributing


def test_di_of_constructed_maps():
    n = 32 * 32
    one_hot = np.zeros((32, 32))
    one_hot[5, 7] = 1.0
    assert diffusion_index(one_hot) == pytest.approx(100.0 / n)  # Gini 1 - 1/n
    assert diffusion_index(np.ones((32, 32))) == pytest.approx(100.0)
    rng = np.random.default_rng(0)
    attribution = rng.normal(size=(3, 16, 16)) * rng.random((1, 16, 16)) ** 4
    di = diffusion_index(attribution)
    assert 0 < di < 100
    assert diffusion_index(attribution * 1e-6) == pytest.approx(di)
    assert diffusion_index(attribution * 1e4) == pytest.approx(di)
    assert diffusion_index(-attribution) == pytest.approx(di)
    # The sorted formula equals the definition sum_ij |g_i - g_j| / (2 n^2 mean(g)) on the channel-summed |map|.
    g = np.abs(attribution.sum(axis=0)).ravel()
    assert gini(g) == pytest.approx(np.abs(g[:, None] - g[None, :]).sum() / (2 * g.size**2 * g.mean()))
    assert np.isnan(diffusion_index(np.zeros((3, 4, 4))))


# The batched path and one step at a time agree to float rounding for every arch. (TSFNet used to differ by
# 1% of the map's maximum: the phase of its real spectrum bins sat on the pi / -pi cut by the sign of a 1e-17
# imaginary part that batching rounded differently; those bins now get +0 imaginary parts, see
# rssr_arch.arch_util.self_conjugate.)
@pytest.mark.parametrize(
    'network_g, atol',
    [
        ({**EDSR_TINY, 'upscale': 4}, 1e-4),
        ({'type': 'FAT', 'upscale': 4, 'embed_dim': 16, 'num_blocks': 1, 'depth': 1, 'num_heads': 2}, 1e-4),
        ({'type': 'TSFNet', 'upscale': 4, 'num_feat': 8, 'num_block': 1}, 1e-4),
    ],
    ids=['EDSR', 'FAT', 'TSFNet'],
)
def test_batched_path_equals_one_step_at_a_time(network_g, atol):
    net = _net(network_g)
    img = _image(12, 12)
    window = (16, 12, 12)
    one = path_attribution(net, img, window, steps=6, batch=1, net=net)
    batched = path_attribution(net, img, window, steps=6, batch=4, net=net)  # chunks of 4 and 2
    peak = np.abs(one.attribution).max()
    assert peak > 0
    np.testing.assert_allclose(batched.attribution, one.attribution, rtol=0, atol=atol * peak)
    np.testing.assert_allclose(batched.path_objectives, one.path_objectives, rtol=atol / 10)
    np.testing.assert_allclose(batched.sr, one.sr, atol=atol / 10)
    assert diffusion_index(batched.attribution) == pytest.approx(diffusion_index(one.attribution), abs=100 * atol)
    # The same batch twice gives the same map (deterministic; FAT in its deterministic eval mode).
    again = path_attribution(net, img, window, steps=6, batch=4, net=net)
    np.testing.assert_array_equal(again.attribution, batched.attribution)


def _write_image(path, h, w):
    img = (_image(h, w).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def _write_opt(path, network_g, scale=4, weights=None, name=None):
    opt = {'name': name or path.stem, 'model_type': 'SRModel', 'scale': scale, 'network_g': network_g}
    if weights:
        opt['path'] = {'pretrain_network_g': str(weights), 'param_key_g': 'params', 'strict_load_g': True}
    path.write_text(yaml.safe_dump(opt))
    return path


def test_command_writes_every_output_for_two_models(tmp_path):
    """-opt (a test option file with trained-format weights) and --arch SwinIR (padded input) on an HR image."""
    torch.manual_seed(1)
    edsr = build_model({**EDSR_TINY, 'upscale': 4})
    weights = tmp_path / 'edsr.pth'
    torch.save({'params': edsr.state_dict()}, weights)
    opt = _write_opt(tmp_path / 'edsr_tiny.yml', {**EDSR_TINY, 'upscale': 4}, weights=weights, name='EDSR tiny')
    image = _write_image(tmp_path / 'hr.png', 72, 80)  # LR 18x20: not a multiple of SwinIR's window 4
    out = tmp_path / 'lam'
    swinir = [
        'embed_dim=12',
        'depths=[1]',
        'num_heads=[2]',
        'window_size=4',
        'img_size=16',
        'mlp_ratio=1',
        'upsampler=pixelshuffle',
    ]
    argv = ['-opt', str(opt), '--arch', 'SwinIR', '--scale', '4', '--image', str(image), '--window', '30', '20', '16']
    argv += ['--output', str(out), '--steps', '4', '--batch', '3', '--device', 'cpu', '--no-progress']
    assert main(argv + [x for opt_ in swinir for x in ('--arch-opt', opt_)]) == 0

    assert sorted(os.listdir(tmp_path)) == ['edsr.pth', 'edsr_tiny.yml', 'hr.png', 'lam']  # no temporary left
    assert sorted(os.listdir(out)) == ['EDSR_tiny', 'SwinIR', 'comparison.png', 'lam.csv']
    for folder in ('EDSR_tiny', 'SwinIR'):
        assert sorted(os.listdir(out / folder)) == [
            'attribution.npy',
            'blend.png',
            'lam.json',
            'saliency.png',
            'window.png',
        ]
        attribution = np.load(out / folder / 'attribution.npy')
        assert attribution.shape == (3, 18, 20) and np.abs(attribution).max() > 0
        record = json.loads((out / folder / 'lam.json').read_text())
        assert record['di'] == pytest.approx(diffusion_index(attribution))
        assert record['attribution_sum'] == pytest.approx(attribution.sum())
        assert record['objective'] > 0 and record['baseline_objective'] > 0
        assert cv2.imread(str(out / folder / 'window.png')).shape == (72, 80, 3)
        assert cv2.imread(str(out / folder / 'blend.png')).shape == (72, 80, 3)
    assert json.loads((out / 'EDSR_tiny' / 'lam.json').read_text())['weights'] == str(weights)
    with open(out / 'lam.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['model'] for r in rows] == ['EDSR tiny', 'SwinIR'] and float(rows[0]['di']) > 0
    assert cv2.imread(str(out / 'comparison.png')) is not None


@pytest.fixture
def tiny_setup(tmp_path):
    image = _write_image(tmp_path / 'lr.png', 16, 16)
    args = ['--image', str(image), '--lr-input', '--steps', '2', '--device', 'cpu', '--no-progress']
    return tmp_path, args


def _assert_nothing_written(tmp_path, out):
    assert not out.exists()
    assert not [name for name in os.listdir(tmp_path) if '.part' in name]


def test_window_outside_the_sr_image_is_refused(tiny_setup, capsys):
    tmp_path, args = tiny_setup
    out = tmp_path / 'out'
    argv = ['--arch', 'EDSR', '--scale', '4', '--arch-opt', 'num_feat=8', '--arch-opt', 'num_block=1']
    assert main(argv + args + ['--window', '40', '10', '24', '--output', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'not inside the 64x64 SR image' in err and '0 <= x <= 39' in err
    _assert_nothing_written(tmp_path, out)


def test_unregistered_arch_is_refused(tiny_setup, capsys):
    tmp_path, args = tiny_setup
    out = tmp_path / 'out'
    assert main(['--arch', 'NoSuchNet', '--scale', '4'] + args + ['--window', '0', '0', '8', '--output', str(out)]) == 1
    err = capsys.readouterr().err
    assert "Unknown arch 'NoSuchNet'" in err and 'EDSR' in err and 'FAT' in err
    _assert_nothing_written(tmp_path, out)


def test_weights_that_do_not_fit_are_refused(tiny_setup, capsys):
    tmp_path, args = tiny_setup
    weights = tmp_path / 'edsr8.pth'
    torch.save({'params': build_model({**EDSR_TINY, 'upscale': 4}).state_dict()}, weights)
    out = tmp_path / 'out'
    argv = ['--arch', 'EDSR', '--scale', '4', '--weights', str(weights), '--arch-opt', 'num_feat=16']
    assert main(argv + args + ['--window', '0', '0', '8', '--output', str(out)]) == 1
    err = capsys.readouterr().err
    assert f'{weights} does not fit EDSR' in err
    _assert_nothing_written(tmp_path, out)


def test_failure_after_a_finished_model_leaves_the_output_folder_as_it_was(tiny_setup, capsys):
    """The second model fails in its first forward (network x4, option file scale 2): nothing of the first is kept."""
    tmp_path, args = tiny_setup
    good = _write_opt(tmp_path / 'good.yml', {**EDSR_TINY, 'upscale': 2}, scale=2)
    bad = _write_opt(tmp_path / 'bad.yml', {**EDSR_TINY, 'upscale': 4}, scale=2)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'earlier.txt').write_text('kept')
    assert main(['-opt', str(good), '-opt', str(bad)] + args + ['--window', '0', '0', '8', '--output', str(out)]) == 1
    assert 'expected x2' in capsys.readouterr().err
    assert os.listdir(out) == ['earlier.txt']
    assert not [name for name in os.listdir(tmp_path) if '.part' in name]


def test_hr_sample_through_the_project_lr_function(samples_dir, tmp_path):
    """A real RSSR25 HR image: the LR input is bicubic_lr of it (as the data sets' LR files)."""
    from rssr_apps.lam.cli import load_lr
    from rssr_data.degradations import bicubic_lr

    hr_path = samples_dir / 'train' / 'HR' / '42_1.png'
    lr, lr_rgb = load_lr(str(hr_path), 4)
    expected = bicubic_lr(cv2.imread(str(hr_path), cv2.IMREAD_UNCHANGED), 4)[..., ::-1]
    assert lr.shape == (3, 120, 120) and lr.dtype == torch.float32
    np.testing.assert_array_equal(lr_rgb, expected)
    np.testing.assert_allclose(lr.numpy().transpose(1, 2, 0), expected / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    'extra, code, message',
    [
        (['--kernel-size', '4'], 2, 'argument --kernel-size: 4 is even'),  # argparse, in one line
        (['--steps', '0'], 2, 'argument --steps: 0 is out of range'),
        (['--weights', 'missing.pth'], 1, 'pass --random-init'),
    ],
    ids=['even kernel', 'no steps', 'missing weights'],
)
def test_bad_settings_are_refused_before_anything_runs(tiny_setup, capsys, extra, code, message):
    tmp_path, args = tiny_setup
    out = tmp_path / 'out'
    argv = ['--arch', 'EDSR', '--scale', '4', '--arch-opt', 'num_feat=8', '--arch-opt', 'num_block=1']
    try:
        result = main(argv + args + extra + ['--window', '0', '0', '8', '--output', str(out)])
    except SystemExit as error:
        result = error.code
    assert result == code and message in capsys.readouterr().err
    _assert_nothing_written(tmp_path, out)


def test_readme_figure_option_file_builds_its_three_models():
    from rssr_apps.lam.cli import option_specs, prepare_models

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'options', 'benchmark_lam_small_x4.yml')
    specs = option_specs(path)
    assert [s['name'] for s in specs] == ['TSFNet-S', 'FAT-S', 'EDSR-S']
    models, scale = prepare_models(specs, torch.device('cpu'), random_init=True)
    assert scale == 4 and [type(net).__name__ for _, net, _ in models] == ['TSFNet', 'FAT', 'EDSR']
    assert all(weights is None and not net.training for _, net, weights in models)
