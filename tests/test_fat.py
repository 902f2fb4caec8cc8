"""FAT: parity with the official code, the checkpoint converter, reproducibility, any size and scale."""

import re

import pytest
import torch

import rssr_arch
from rssr_arch.arch_util import recorded_option_keys
from rssr_arch.fat_arch import FAT, ChunkAttention, LSHSparseAttention, window_attention

TINY = dict(embed_dim=16, num_blocks=1, depth=1, num_heads=2)


def _official_small(parity_dir):
    ref = torch.load(parity_dir / 'fat_small_x4.pt', weights_only=True)
    cfg = ref['config']
    model = FAT(
        upscale=cfg['scale'],
        embed_dim=cfg['dim'],
        num_blocks=cfg['num_srtb'],
        depth=cfg['num_swin_per_srtb'],
        num_heads=cfg['num_heads'],
        window_size=cfg['window_sizes'],
        mlp_ratio=cfg['mlp_ratio'],
        upsampler_width=cfg['upsampler_num_feat'],
        fssa_chunk_size=cfg['fssa_chunk_size'],
        fssa_reduction=cfg['fssa_reduction'],
        fssa_hashes=cfg['fssa_n_hashes_srtb'],
        mat_fssa_hashes=cfg['fssa_n_hashes_mat'],
        deterministic_eval=False,
    )
    model.load_state_dict(rssr_arch.convert_official_state_dict('FAT', ref['state_dict']), strict=True)
    return model.eval(), ref


def test_matches_official_output(parity_dir):
    model, ref = _official_small(parity_dir)
    torch.manual_seed(ref['forward_rng_seed'])  # the official draws its LSH rotations from the global RNG
    with torch.no_grad():
        out = model((ref['input'] + 1) / 2) * 2 - 1  # ours works on [0,1], the official on [-1,1]
    tol = 1e-4 * max(1.0, ref['output'].abs().max().item())
    assert (out - ref['output']).abs().max().item() <= tol


def test_converter_accounts_for_every_official_key(parity_dir):
    rows = [line.rstrip('\n').split('\t') for line in open(parity_dir / 'fat_official_x4_state_dict.tsv')]
    official = {key: torch.zeros([int(v) for v in shape.split('x')] if shape else []) for key, shape, _ in rows}
    converted = rssr_arch.convert_official_state_dict('FAT', official)
    model = FAT()
    ours = {k: v for k, v in model.state_dict().items() if k not in recorded_option_keys(model)}  # not weights
    assert converted.keys() == ours.keys()
    assert all(converted[k].shape == ours[k].shape for k in ours)
    # Every official key that did not become one of ours is a module the official forward never runs.
    unused = re.compile(
        r'^(ca|conv3)\.|^uafb\.ca2\.|relative_position_index$|conv_layer\.|'
        r'^SRTB_list\.\d+\.(ca|sa|MAT\.(conv|ca|sa)|STL\.\d+\.(conv|ca|sa|FSSA))\.'
    )
    dropped = [k for k in official if unused.search(k)]
    assert len(dropped) + len(converted) == len(official)
    # 19.59 M parameters in the official checkpoint, 10.23 M of them used by its forward.
    assert round(sum(v.numel() for k, v in official.items() if 'index' not in k) / 1e6, 2) == 19.59
    assert round(sum(v.numel() for v in converted.values()) / 1e6, 2) == 10.23
    with pytest.raises(KeyError, match='not_a_fat_key'):
        rssr_arch.convert_official_state_dict('FAT', {'not_a_fat_key': torch.zeros(1)})


def test_deterministic_eval_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    model = FAT(**TINY)
    official = FAT(**TINY, deterministic_eval=False)
    official.load_state_dict(model.state_dict())
    fssa = [m for m in model.modules() if isinstance(m, LSHSparseAttention)]
    # Each FSSA knows the choice from construction (no train()/eval() override pushes it).
    assert fssa and all(m.deterministic_eval for m in fssa)
    assert not any(m.deterministic_eval for m in official.modules() if isinstance(m, LSHSparseAttention))
    assert len({m.seed for m in fssa}) == len(fssa)  # fixed rotations per module

    x = torch.rand(1, 3, 24, 24)
    model.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    assert torch.equal(state, torch.get_rng_state())
    with torch.no_grad():
        official.eval()
        assert not torch.equal(official(x), official(x))  # global-RNG rotations, as the official code
        model.train()  # training draws from the global RNG even with deterministic_eval
        torch.manual_seed(1)
        drawn = model(x)
        assert not torch.equal(state, torch.get_rng_state())
        torch.manual_seed(1)
        assert torch.equal(official.train()(x), drawn)
        model.eval()
        assert torch.equal(model(x), first)  # back in eval: the same fixed rotations


def test_any_size_and_scale():
    torch.manual_seed(0)
    for scale in (2, 3, 4, 8):
        model = FAT(upscale=scale, **TINY).eval()
        for h, w in ((7, 10), (13, 12), (24, 36)):
            with torch.no_grad():
                out = model(torch.rand(1, 3, h, w))
            assert out.shape == (1, 3, h * scale, w * scale)
            assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match='upscale'):
        FAT(upscale=5, **TINY)


def test_training_step_reaches_every_parameter():
    torch.manual_seed(0)
    model = FAT(**TINY).train()
    model(torch.rand(2, 3, 12, 12)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.slow  # minutes of compilation on a 2-core CPU
def test_torch_compile():
    torch.manual_seed(0)
    model = FAT(**TINY).eval()
    x = torch.rand(1, 3, 12, 12)
    compiled = torch.compile(model)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_window_attention_plain_products_equal_sdpa():
    torch.manual_seed(3)
    q, k, v = (torch.randn(4, 2, 36, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = torch.randn(2, 36, 36, dtype=torch.float64)
    plain, fused = window_attention(q, k, v, bias, fused=False), window_attention(q, k, v, bias, fused=True)
    assert torch.allclose(plain, fused)


def test_chunk_attention_backward_matches_autograd():
    """The hand-written backward of LSH chunk attention, through both outputs (values and log-sum-exp)."""
    torch.manual_seed(4)
    q, k, v = (torch.randn(2, 3, s, e, dtype=torch.float64, requires_grad=True) for s, e in ((5, 4), (9, 4), (9, 6)))
    assert torch.autograd.gradcheck(ChunkAttention.apply, (q, k, v))
    out, lse = ChunkAttention.apply(q, k, v)
    scores = q @ k.transpose(-2, -1)
    assert torch.allclose(out, scores.softmax(-1) @ v) and torch.allclose(lse, scores.logsumexp(-1, keepdim=True))
