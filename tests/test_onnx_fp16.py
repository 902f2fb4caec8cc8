"""``rssr-export --fp16``: a float16 graph (float32 or, with ``--fp16-io``, float16 input and output) that
onnxruntime's CPU provider runs within 1e-2 of float32 PyTorch, for FAT and TSFNet."""

import onnx
import pytest
import torch

import rssr_patches
from rssr_apps.export import export_model
from rssr_apps.onnx_compat import float64_nodes
from rssr_apps.onnx_export import read_onnx_metadata, verify_onnx
from rssr_apps.onnx_profiles import DeployedSR
from rssr_arch.arch_util import export_mode, prepare_export
from rssr_utils.weights import build_model
from tests.helpers.options import TINY_NETWORKS

rssr_patches.import_registries()

FAT_TINY = dict(type='FAT', upscale=4, embed_dim=16, num_blocks=1, depth=1, num_heads=2)
SIZES = [(13, 30), (26, 26)]


def _elem_type(value):
    return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name


def test_half_network_keeps_spectra_in_float32():
    torch.manual_seed(0)
    net = prepare_export(build_model(dict(TINY_NETWORKS['TSFNet']))).eval()
    half = DeployedSR(net, fp16=True).eval()
    kept = [m for m in half.net.modules() if getattr(m, 'keep_float32', False)]
    assert kept and all(p.dtype == torch.float32 for m in kept for p in m.parameters())
    assert any(p.dtype == torch.float16 for p in half.net.parameters())  # the rest is float16
    assert next(net.parameters()).dtype == torch.float32  # the network itself is untouched
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad(), export_mode():
        out = half(x)
    assert out.dtype == torch.float32 and (out - net(x)).abs().max() <= 1e-2


@pytest.mark.slow  # a FAT and a TSFNet export: minutes of tracing on 2 cores
@pytest.mark.parametrize('network, io', [(FAT_TINY, 'float16'), (TINY_NETWORKS['TSFNet'], 'float32')], ids=str)
def test_fp16_export_runs_within_1e_2_of_float32(network, io, tmp_path):
    result = export_model(dict(network), str(tmp_path), fp16=True, fp16_io=io == 'float16', log=lambda *_: None)
    assert result['onnx_max_abs_error'] <= 1e-2
    model = onnx.load(result['onnx'])
    assert _elem_type(model.graph.input[0]) == _elem_type(model.graph.output[0]) == io
    assert any(_elem_type_of(i) == 'float16' for i in model.graph.initializer)  # float16 weights
    assert float64_nodes(model) == [] and model.ir_version <= 9
    assert 'float16' in read_onnx_metadata(result['onnx'])['precision']
    net = build_model(None, result['safetensors'])  # the float32 weights
    errors = verify_onnx(prepare_export(net), result['onnx'], SIZES, batch=2)
    assert max(errors) <= 1e-2, errors


def _elem_type_of(initializer):
    return onnx.helper.tensor_dtype_to_np_dtype(initializer.data_type).name


def test_fp16_io_needs_fp16(tmp_path):
    with pytest.raises(ValueError, match='--fp16-io needs --fp16'):
        export_model(dict(FAT_TINY), str(tmp_path / 'x'), fp16_io=True, log=lambda *_: None)
    assert not (tmp_path / 'x').exists()
