"""TSFNet: parity with the official code, the converter, any size and scale, the two-output contract."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import rssr_arch
from rssr_arch.arch_util import recorded_option_keys
from rssr_arch.tsfnet_arch import MDTA, SPB, TSFNet, band_masks

REPO = Path(__file__).resolve().parents[1]
TINY = dict(num_feat=8, num_block=1)


def _official(parity_dir, scale):
    ref = torch.load(parity_dir / f'tsfnet_small_x{scale}.pt', weights_only=True)
    kw = ref['official_kwargs']
    model = TSFNet(upscale=kw['scale'], num_feat=kw['num_features'], num_block=kw['base_num_every_group'])
    model.load_state_dict(rssr_arch.convert_official_state_dict('TSFNet', ref['state_dict']), strict=True)
    return model, ref


@pytest.mark.parametrize('scale', [4, 8])
def test_matches_official_outputs(parity_dir, scale):
    model, ref = _official(parity_dir, scale)
    with torch.no_grad():
        final, stage1 = model.train()(ref['input'])
        evaluated = model.eval()(ref['input'])
    for ours, theirs in ((final, ref['output']), (stage1, ref['stage1_output']), (evaluated, ref['output'])):
        assert (ours - theirs).abs().max().item() <= 1e-4 * max(1.0, theirs.abs().max().item())


def test_converter_maps_every_official_key(parity_dir):
    rows = [line.rstrip('\n').split('\t') for line in open(parity_dir / 'tsfnet_official_state_dict.tsv')]
    official = {key: torch.zeros([int(v) for v in shape.split('x')] if shape else []) for key, shape, _ in rows}
    converted = rssr_arch.convert_official_state_dict('TSFNet', official)
    model = TSFNet()
    ours = {k: v for k, v in model.state_dict().items() if k not in recorded_option_keys(model)}  # not weights
    assert len(converted) == len(official) == len(ours)  # nothing dropped: every official module is used
    assert converted.keys() == ours.keys()
    assert all(converted[k].shape == ours[k].shape for k in ours)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 3) == 3.128
    with pytest.raises(KeyError, match='bogus'):
        rssr_arch.convert_official_state_dict('TSFNet', {'bogus.weight': torch.zeros(1)})


def test_convert_script_round_trip(parity_dir, tmp_path):
    ref = torch.load(parity_dir / 'tsfnet_small_x4.pt', weights_only=True)
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'state_dict': ref['state_dict']}, src)
    subprocess.run(
        [
            sys.executable,
            str(REPO / 'scripts' / 'convert_official_checkpoint.py'),
            '--arch',
            'TSFNet',
            '--input',
            str(src),
            '--output',
            str(dst),
        ],
        check=True,
        capture_output=True,
    )
    kw = ref['official_kwargs']
    model = TSFNet(upscale=kw['scale'], num_feat=kw['num_features'], num_block=kw['base_num_every_group']).eval()
    model.load_state_dict(torch.load(dst, weights_only=True)['params'], strict=True)
    with torch.no_grad():
        assert torch.allclose(model(ref['input']), ref['output'], atol=1e-4)


def _mdta_unfolded(m, x):
    """Restormer's MDTA written out: channel LayerNorm, 1x1 + depthwise 3x3 qkv, per-head L2-normalised
    q and k, softmax(q k^T * temperature) v, then the 1x1 output projection as its own conv."""
    b, c, h, w = x.shape
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    y = (x - mean) / (var + m.norm.eps).sqrt() * m.norm.weight.view(1, c, 1, 1) + m.norm.bias.view(1, c, 1, 1)
    qkv = F.conv2d(F.conv2d(y, m.qkv.weight), m.qkv_dwconv.weight, padding=1, groups=3 * c)
    q, k, v = (t.reshape(b, m.num_heads, c // m.num_heads, h * w) for t in qkv.chunk(3, dim=1))
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    attn = (q @ k.transpose(-2, -1) * m.temperature).softmax(dim=-1)
    return F.conv2d((attn @ v).reshape(b, c, h, w), m.project_out.weight)


def test_mdta_with_folded_projection_equals_the_unfolded_attention():
    torch.manual_seed(0)
    m = MDTA(16).double()
    with torch.no_grad():  # move every parameter away from its initial value
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, 16, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mdta_unfolded(m, x), rtol=0, atol=1e-10)
    with pytest.raises(RuntimeError, match='folded'):  # the projection is only a weight holder
        m.project_out(x)
    assert 'project_out.weight' in m.state_dict()  # the official checkpoint key


def test_band_masks_partition_the_spectrum():
    # Summed over levels (embedded in the finest grid) the bands weigh every frequency by 1.
    sizes = [(64, 48), (32, 24), (16, 12), (8, 6)]
    masks = band_masks(sizes, 'cpu')
    total = masks[0].clone().double()
    for (h, w), mask in zip(sizes[1:], masks[1:]):
        total[32 - h // 2 : 32 + h // 2, : w // 2 + 1] += mask
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    assert masks[-1].max() == masks[-1][3, 0] == 1  # the coarsest band is a low-pass centred on DC


def test_band_propagation_is_additive_and_keeps_shapes():
    feats = [torch.zeros(1, 8, 4 * 2**k, 6 * 2**k) for k in range(4)]
    feats[-1][:, 4:] = torch.rand(1, 4, 32, 48)
    out = SPB(8)(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]
    assert all(torch.equal(o[:, :4], f[:, :4]) for o, f in zip(out, feats))  # first half untouched


@pytest.mark.parametrize('scale', [2, 4, 8, 16])
def test_any_scale_and_size(scale):
    torch.manual_seed(0)
    model = TSFNet(upscale=scale, **TINY).eval()
    for h, w in ((5, 7), (6, 9), (4, 4)):
        with torch.no_grad():
            out = model(torch.rand(1, 3, h, w))
        assert out.shape == (1, 3, h * scale, w * scale)
        assert torch.isfinite(out).all()


def test_training_returns_both_stages_and_every_parameter_learns():
    torch.manual_seed(0)
    model = TSFNet(upscale=4, **TINY).train()
    final, stage1 = model(torch.rand(2, 3, 6, 5))
    assert final.shape == stage1.shape == (2, 3, 24, 20)
    (final.mean() + stage1.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow  # minutes of compilation on a 2-core CPU
def test_torch_compile():
    torch.manual_seed(0)
    model = TSFNet(upscale=4, **TINY).eval()
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        assert torch.allclose(torch.compile(model)(x), model(x), atol=1e-5)
