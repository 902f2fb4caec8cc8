"""Every ONNX file rssr writes runs on onnxruntime 1.16 (IR <= 9, opset <= 19, no float64 op) and on the newest.

The newest is this environment's onnxruntime. An older one lives in its own
virtual environment (it cannot share this one): CI creates it (.ci/run, the
oldest onnxruntime the index offers from the 1.16 series on) and names its
Python in ``RSSR_OLD_ONNXRUNTIME_PYTHON``; without it that half skips.
tests/helpers/run_onnx.py runs the files there (numpy + onnxruntime only).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import rssr_patches
from rssr_apps.export import export_model
from rssr_apps.onnx_compat import float64_nodes, runtime_refusal
from rssr_arch.arch_util import prepare_export
from rssr_utils.weights import build_model
from tests.helpers.options import TINY_NETWORKS

rssr_patches.import_registries()

RUNNER = Path(__file__).parent / 'helpers' / 'run_onnx.py'
OLD_PYTHON = os.environ.get('RSSR_OLD_ONNXRUNTIME_PYTHON')
FAT_TINY = dict(type='FAT', upscale=4, embed_dim=16, num_blocks=1, depth=1, num_heads=2)
# Sizes where float32 TSFNet is itself accurate (see test_export.test_onnx_tsfnet_three_sizes_from_one_export).
SIZES = [(13, 30), (16, 16), (30, 13)]
TILE = 24


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    """FAT and TSFNet, each as the default (dynamic) export and as the Deepness profile; FAT also in float16."""
    out = {}
    for network in (FAT_TINY, dict(TINY_NETWORKS['TSFNet'])):
        name = network['type']
        folder = tmp_path_factory.mktemp(name)
        out[name] = export_model(network, str(folder), verify=False, log=lambda *_: None)
        deepness = export_model(
            network, str(folder / 'deepness'), formats=('onnx',), tile=TILE, overlap=0, deepness=True,
            resolution_cm=50.0, verify=False, log=lambda *_: None,
        )  # fmt: skip
        out[name]['deepness'] = deepness['onnx']
    folder = tmp_path_factory.mktemp('fp16')
    fp16 = export_model(FAT_TINY, str(folder), formats=('onnx',), fp16=True, fp16_io=True, verify=False, log=print)
    out['FAT']['fp16'] = fp16['onnx']
    return out


def _inputs():
    generator = torch.Generator().manual_seed(0)
    arrays = {f'{h}x{w}': torch.rand(2, 3, h, w, generator=generator) for h, w in SIZES}
    arrays['tile'] = torch.rand(2, 3, TILE, TILE, generator=generator)
    return arrays


def _run(python, models, tmp_path):
    """Outputs of ``models`` on :func:`_inputs` through ``python``'s onnxruntime, and its version."""
    inputs = _inputs()
    np.savez(tmp_path / 'in.npz', **{k: v.numpy() for k, v in inputs.items()})
    run = subprocess.run(
        [python, str(RUNNER), str(tmp_path / 'in.npz'), str(tmp_path / 'out.npz'), *map(str, models)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = dict(np.load(tmp_path / 'out.npz'))
    return inputs, outputs, str(outputs.pop('version'))


def _check_parity(exports, python, tmp_path, fp16=True):
    names = sorted(exports)
    models = [p for n in names for p in (exports[n]['onnx'], exports[n]['deepness'])]
    models += [exports['FAT']['fp16']] if fp16 else []
    inputs, outputs, version = _run(python, models, tmp_path)
    for index, name in enumerate(names):
        net = prepare_export(build_model(None, exports[name]['safetensors']))
        with torch.no_grad():
            for size in [f'{h}x{w}' for h, w in SIZES]:
                ref = net(inputs[size]).numpy()
                assert np.abs(outputs[f'{2 * index}/{size}'] - ref).max() <= 1e-4, (version, name, size)
            ref = net(inputs['tile']).clamp(0, 1).numpy()  # the Deepness profile clips
            assert np.abs(outputs[f'{2 * index + 1}/tile'] - ref).max() <= 1e-4, (version, name, 'deepness')
            if name == 'FAT' and fp16:  # float16 (input and output too) against float32 PyTorch
                half = outputs[f'{len(models) - 1}/tile'].astype(np.float32)
                assert np.abs(half - net(inputs['tile']).numpy()).max() <= 1e-2, (version, 'FAT float16')
    return version


@pytest.mark.slow  # a FAT and a TSFNet export, two profiles each: minutes of tracing on 2 cores
def test_exports_are_portable_and_run_on_the_newest_onnxruntime(exports, tmp_path):
    for name, result in exports.items():
        for path in (result['onnx'], result['deepness'], *([result['fp16']] if 'fp16' in result else [])):
            model = onnx.load(path)
            opset = next(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))
            assert model.ir_version <= 9 and opset <= 19, (path, model.ir_version, opset)
            assert float64_nodes(model) == [], path
            assert runtime_refusal(model, '1.16.0') is None
    version = _check_parity(exports, sys.executable, tmp_path)
    assert version == __import__('onnxruntime').__version__


@pytest.mark.slow  # uses the exports
@pytest.mark.skipif(not OLD_PYTHON, reason='RSSR_OLD_ONNXRUNTIME_PYTHON (a venv with onnxruntime 1.16) not set')
def test_exports_run_on_the_oldest_onnxruntime(exports, tmp_path):
    # float32 files only: onnxruntime 1.16 has no float16 Softmax on CPU and fails expanding its
    # function body (docs/export.md, float16); the newest runs the float16 file above.
    version = _check_parity(exports, OLD_PYTHON, tmp_path, fp16=False)
    assert version.startswith('1.16'), version


def test_newer_opsets_are_refused_by_name_on_older_runtimes():
    model = onnx.helper.make_model(
        onnx.helper.make_graph([], 'g', [], []), opset_imports=[onnx.helper.make_opsetid('', 21)]
    )
    reason = runtime_refusal(model, '1.16.3')
    assert 'opset 21' in reason and 'onnxruntime >= 1.18' in reason and '1.16.3' in reason and '--opset 19' in reason
    assert runtime_refusal(model, '1.18.0') is None and runtime_refusal(model, '1.32.0') is None


def test_infer_refuses_a_newer_opset_by_name(tmp_path, monkeypatch):
    import onnxruntime

    from rssr_apps.inference.onnx import OnnxSR

    x = onnx.helper.make_tensor_value_info('input', onnx.TensorProto.FLOAT, ['b', 3, 'h', 'w'])
    y = onnx.helper.make_tensor_value_info('output', onnx.TensorProto.FLOAT, ['b', 3, 'h', 'w'])
    graph = onnx.helper.make_graph([onnx.helper.make_node('Identity', ['input'], ['output'])], 'g', [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid('', 21)], ir_version=10)
    path = tmp_path / 'model.onnx'
    onnx.save(model, path)
    assert OnnxSR(str(path)).session  # the installed onnxruntime runs opset 21
    monkeypatch.setattr(onnxruntime, '__version__', '1.16.3')
    with pytest.raises(ValueError, match=r'model.onnx: opset 21 needs onnxruntime >= 1.18, this is onnxruntime 1.16.3'):
        OnnxSR(str(path))
