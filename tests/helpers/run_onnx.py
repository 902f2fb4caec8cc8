"""Run ONNX files with whatever onnxruntime this Python has: numpy and onnxruntime only (no torch, no rssr),
so that a virtual environment holding an old onnxruntime can run it (tests/test_onnx_runtimes.py).

Usage: python run_onnx.py INPUTS.npz OUTPUTS.npz MODEL.onnx [MODEL.onnx ...]

Every array of INPUTS.npz is fed to every model whose input takes its shape
(fixed-size models skip the others); OUTPUTS.npz gets ``<model index>/<array name>``
for each run, and ``version`` (onnxruntime's). A model that fails to load or
run makes the script exit 1 with its name and onnxruntime's message.
"""

import sys

import numpy as np
import onnxruntime as ort


def fits(shape, declared):
    """True when an input of ``shape`` fits the model's declared shape (ints fixed, names free)."""
    return len(shape) == len(declared) and all(not isinstance(d, int) or d == s for s, d in zip(shape, declared))


def main(argv):
    inputs_path, outputs_path, *models = argv
    inputs = dict(np.load(inputs_path))
    results = {'version': np.array(ort.__version__)}
    for index, path in enumerate(models):
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # no constant-folding notes
            session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            spec = session.get_inputs()[0]
            dtype = np.float16 if 'float16' in spec.type else np.float32
            for name, x in inputs.items():
                if fits(x.shape, spec.shape):
                    results[f'{index}/{name}'] = session.run(None, {spec.name: x.astype(dtype)})[0]
        except Exception as error:  # onnxruntime raises its own types; report the file and the message
            sys.exit(f'onnxruntime {ort.__version__}: {path}: {type(error).__name__}: {error}')
    np.savez(outputs_path, **results)


if __name__ == '__main__':
    main(sys.argv[1:])
