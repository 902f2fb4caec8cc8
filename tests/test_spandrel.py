"""spandrel loads rssr's files after ``rssr_arch.spandrel.install()`` (docs/spandrel.md).

Each model is written as a real file (``rssr-export``'s model.safetensors, or a
BasicSR ``.pth`` checkpoint), loaded with ``spandrel.ModelLoader().load_from_file``
and run against the network rssr itself builds from the same file.
"""

import subprocess
import sys

import pytest
import torch

from rssr_apps.export import export_model
from rssr_arch.arch_util import recorded_option_keys
from rssr_utils.weights import build_model, build_network
from tests.helpers.options import SUBPROCESS_ENV

spandrel = pytest.importorskip('spandrel')
rssr_spandrel = pytest.importorskip('rssr_arch.spandrel')
rssr_spandrel.install()

TSFNET = dict(type='TSFNet', num_feat=8, num_block=2)
FAT = dict(
    type='FAT', upscale=4, embed_dim=8, num_blocks=2, depth=1, num_heads=2, window_size=[2, 3], mlp_ratio=2.7,
    fssa_chunk_size=8, fssa_hashes=3, mat_fssa_hashes=1, fssa_reduction=3, upsampler_width=12,
)  # fmt: skip
EDSR = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=3)
RCAN = dict(type='RCAN', num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=2)
MSRRESNET = dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=4)
# num_grow_ch 32 (BasicSR's default): spandrel's ESRGAN does not read it from the shapes.
RRDBNET = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=32, scale=4)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """The models here are tiny: one thread is fastest, and on a busy machine by far."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def network(opt, seed=0):
    """``opt`` built by rssr, every parameter moved off its initial value (so all branches count), eval mode."""
    torch.manual_seed(seed)
    net = build_network(dict(opt))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def save_pth(path, params, params_ema=None):
    """A BasicSR checkpoint as ``save_network`` writes it."""
    checkpoint = {'params': params.state_dict()}
    if params_ema is not None:
        checkpoint['params_ema'] = params_ema.state_dict()
    torch.save(checkpoint, path)
    return path


def export_safetensors(opt, tmp_path):
    """rssr-export's model.safetensors of ``network(opt)`` (weights given as a .pth)."""
    weights = save_pth(tmp_path / 'trained.pth', network(opt))
    return export_model(dict(opt), tmp_path / 'export', str(weights), formats=('safetensors',), log=lambda _: None)


def same_output(descriptor, net, tol=1e-5):
    """spandrel's call (its padding, its [0, 1] clamp) against ``net`` on one input; returns the difference.

    The input's sides are at least the multiple the model pads to, and not multiples of it: spandrel's
    padding (reflection) and the model's are then the same (smaller inputs: docs/spandrel.md).
    """
    multiple = descriptor.size_requirements.multiple_of
    size = (multiple + 3, multiple + 1)
    x = torch.rand(1, descriptor.input_channels, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net.eval()(x).clamp(0, 1)
    out = descriptor(x.clone())
    scale = descriptor.scale
    assert out.shape == ref.shape == (1, descriptor.output_channels, size[0] * scale, size[1] * scale)
    error = (out - ref).abs().max().item()
    assert error <= tol
    return error


def check_half(descriptor):
    """supports_half holds: float16 runs within 1e-2 of float32 on CPU, or spandrel refuses the cast."""
    if descriptor.supports_half:
        x = torch.rand(1, descriptor.input_channels, 8, 8, generator=torch.Generator().manual_seed(2))
        ref = descriptor(x)
        out = descriptor.half()(x.half()).float()
        descriptor.float()
        assert (out - ref).abs().max().item() <= 1e-2
    else:
        with pytest.raises(spandrel.UnsupportedDtypeError):
            descriptor.half()


@pytest.mark.parametrize('upscale', [4, 8, 16])
def test_tsfnet_safetensors_export(upscale, tmp_path):
    opt = dict(TSFNET, upscale=upscale)
    path = export_safetensors(opt, tmp_path)['safetensors']
    model = spandrel.ModelLoader().load_from_file(path)
    assert isinstance(model, spandrel.ImageModelDescriptor) and model.architecture.id == 'TSFNet'
    assert (model.purpose, model.scale, model.input_channels, model.output_channels) == ('SR', upscale, 3, 3)
    assert model.tags == ['8nf', '2nb'] and not model.supports_half and not model.supports_bfloat16
    assert model.size_requirements.multiple_of == 16 // upscale  # the LR multiple TSFNet pads to
    assert model.tiling == spandrel.ModelTiling.SUPPORTED
    same_output(model, build_model(None, path))
    check_half(model)


def test_fat_safetensors_export(tmp_path):
    path = export_safetensors(FAT, tmp_path)['safetensors']
    model = spandrel.ModelLoader().load_from_file(path)
    assert (model.architecture.id, model.scale, model.input_channels, model.output_channels) == ('FAT', 4, 3, 3)
    assert model.size_requirements.multiple_of == 12  # windows 2 and 3, MAT windows 4 and 6
    net = model.model
    assert net.pad_multiple == 12 and len(net.blocks) == 2 and len(net.blocks[0].layers) == 2
    assert [b.layers[0].window_size for b in net.blocks] == [2, 3]
    attention = net.blocks[0].fssa.attention
    assert (attention.chunk_size, attention.n_hashes, net.blocks[0].layers[1].fssa.attention.n_hashes) == (8, 3, 1)
    same_output(model, build_model(None, path))
    check_half(model)


@pytest.mark.parametrize('upscale', [2, 3, 8])
def test_fat_upsamplers(upscale, tmp_path):
    """Every FAT upsampler gives its scale back (x4 above), from a BasicSR checkpoint."""
    net = network(dict(FAT, upscale=upscale, num_blocks=1, window_size=2))
    model = spandrel.ModelLoader().load_from_file(save_pth(tmp_path / 'fat.pth', net))
    assert model.scale == upscale and model.size_requirements.multiple_of == 4
    same_output(model, net)


@pytest.mark.parametrize('opt', [dict(TSFNET, upscale=4), FAT], ids=['TSFNet', 'FAT'])
def test_basicsr_checkpoint_takes_params_ema(opt, tmp_path):
    params, ema = network(opt, seed=0), network(opt, seed=1)
    model = spandrel.ModelLoader().load_from_file(save_pth(tmp_path / 'net_g_10.pth', params, ema))
    same_output(model, ema)  # spandrel prefers params_ema, as BasicSR's tests do
    with pytest.raises(AssertionError):
        same_output(model, params)
    only = spandrel.ModelLoader().load_from_file(save_pth(tmp_path / 'net_g_20.pth', params))
    same_output(only, params)


def test_checkpoints_without_recorded_options(tmp_path):
    """Files saved before the options were recorded load as before; the constructor's values stand."""
    old = {}
    for name, opt in (('TSFNet', dict(TSFNET, upscale=4)), ('FAT', FAT)):
        net = network(opt)
        keys = recorded_option_keys(net)
        assert keys and keys <= set(net.state_dict())
        state = {k: v for k, v in net.state_dict().items() if k not in keys}
        old[name] = tmp_path / f'{name}_old.pth'
        torch.save({'params': state}, old[name])
        rebuilt = build_model(dict(opt), str(old[name]))  # rssr's loader, strict
        fresh = build_network(dict(opt))
        fresh.load_state_dict(state, strict=True)
        same_output(spandrel.ModelLoader().load_from_file(save_pth(tmp_path / f'{name}.pth', rebuilt)), fresh)
    x16 = build_network(dict(TSFNET, upscale=16))
    x16.load_state_dict(network(dict(TSFNET, upscale=8)).state_dict(), strict=True)  # x8 weights, fine-tuned at x16
    assert x16.upscale == int(x16.upscale_factor) == 16
    # spandrel needs TSFNet's scale: an old file is refused with the fix.
    with pytest.raises(ValueError, match='upscale_factor.*rssr-export'):
        spandrel.ModelLoader().load_from_file(old['TSFNet'])
    # FAT's FSSA options fall back to the official ones.
    attention = spandrel.ModelLoader().load_from_file(old['FAT']).model.blocks[0].fssa.attention
    assert (attention.chunk_size, attention.n_hashes) == (144, 4)


def without_rssr():
    """spandrel's registry as it is without :func:`rssr_arch.spandrel.install`."""
    registry = spandrel.ArchRegistry()
    registry.add(*(a for a in spandrel.MAIN_REGISTRY if a.architecture.id not in rssr_spandrel.RSSR_REGISTRY))
    return registry


BASICSR_NAMED = [(EDSR, 'BasicSR-EDSR', True), (RCAN, 'BasicSR-RCAN', False), (MSRRESNET, 'BasicSR-MSRResNet', True)]


@pytest.mark.parametrize('opt, arch, half', BASICSR_NAMED, ids=[o['type'] for o, _, _ in BASICSR_NAMED])
def test_basicsr_named_archs(opt, arch, half, tmp_path):
    """BasicSR's key names, which spandrel alone refuses, from an export and from a checkpoint."""
    net = network(opt)
    with pytest.raises(spandrel.UnsupportedModelError):
        without_rssr().load(net.state_dict())
    exported = export_safetensors(opt, tmp_path)['safetensors']
    for path in (exported, save_pth(tmp_path / 'net.pth', net)):
        model = spandrel.ModelLoader().load_from_file(path)
        assert (model.architecture.id, model.architecture.name) == (arch, opt['type'])
        assert (model.scale, model.input_channels, model.output_channels) == (opt['upscale'], 3, 3)
        assert type(model.model) is type(net) and model.supports_half is half
        same_output(model, build_model(None, path) if path == exported else net)
        check_half(model)


def test_rrdbnet_stays_esrgan(tmp_path):
    net = network(RRDBNET)
    exported = export_safetensors(RRDBNET, tmp_path)['safetensors']
    for path in (save_pth(tmp_path / 'net_g.pth', net), exported):
        model = spandrel.ModelLoader().load_from_file(path)
        assert model.architecture.id == 'ESRGAN' and model.scale == 4
        same_output(model, build_model(None, path) if path == exported else net)


def test_install_is_idempotent_and_detects_last():
    assert rssr_spandrel.install() == []
    order = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures('detection')]
    ours = [a.architecture.id for a in rssr_spandrel.RSSR_REGISTRY]
    assert order[-len(ours) :] == ours  # after every other architecture: none of theirs changes hands


def test_importing_rssr_arch_leaves_spandrel_alone():
    code = 'import sys, rssr_arch; assert "spandrel" not in sys.modules'
    subprocess.run([sys.executable, '-c', code], env=SUBPROCESS_ENV, check=True, timeout=300)
