"""Console entry points: ``rssr-train``, ``rssr-test``, ``rssr-infer``, ``rssr-bench``, ``rssr-demo``,
``rssr-degrade``, ``rssr-denoise``, ``rssr-lam``, ``rssr-export``.

``scripts/<name>.py`` call the same functions. Train and test are aliases of
``python -m basicsr.train`` / ``python -m basicsr.test``: BasicSR's own
pipelines, with rssr's registries and :func:`rssr_patches.patch_basicsr` applied
explicitly (so they also work with ``RSSR_NO_AUTOLOAD=1``), and ``experiments/``,
``results/`` and ``tb_logger/`` under the current directory.
"""

import os
import sys


def _root_path():
    return os.path.abspath(os.getcwd())


def _run_pipeline(pipeline):
    """Run a BasicSR pipeline; a bad option file or training state ends it with its message, not a traceback."""
    from rssr_utils.options import OptionError
    from rssr_utils.states import StateError

    try:
        pipeline(_root_path())
    except (OptionError, StateError) as error:
        sys.exit(f'error: {error}')


def train():
    """``rssr-train -opt X.yml [--launcher pytorch] [--auto_resume] [--debug] [--force_yml k=v]``."""
    import rssr_patches

    rssr_patches.import_registries()
    from basicsr.train import train_pipeline

    _run_pipeline(train_pipeline)


def test():
    """``rssr-test -opt X.yml``: BasicSR's test pipeline with rssr's registries."""
    import rssr_patches

    rssr_patches.import_registries()
    from basicsr.test import test_pipeline

    _run_pipeline(test_pipeline)


# Console script -> (function here, module whose main(argv) it runs, what it does). setup.py's
# console_scripts point at these functions; scripts/<name>.py call them too.
APPS = {
    'rssr-infer': ('infer', 'rssr_apps.inference', 'tiled super-resolution of whole scenes'),
    'rssr-bench': ('bench', 'rssr_apps.benchmark', 'quality and cost tables (-opt options/benchmark_x4.yml)'),
    'rssr-demo': ('demo', 'rssr_apps.demo', 'the built-in demo'),
    'rssr-degrade': ('degrade', 'rssr_apps.degrade', 'Real-ESRGAN second-order LR images'),
    'rssr-denoise': ('denoise', 'rssr_apps.denoise', 'NLM / BM3D-denoised HR copies'),
    'rssr-lam': ('lam', 'rssr_apps.lam', 'local attribution maps (-opt X.yml --image IMG --window X Y SIZE)'),
    'rssr-export': ('export', 'rssr_apps.export', 'safetensors + sidecar and ONNX'),
}


def _app(command, module, what):
    def run(argv=None):
        import importlib

        return importlib.import_module(module).main(sys.argv[1:] if argv is None else argv)

    run.__name__ = run.__qualname__ = APPS[command][0]
    run.__doc__ = f'``{command}``: {what} (see :mod:`{module}`).'
    return run


for _command, (_function, _module, _what) in APPS.items():
    globals()[_function] = _app(_command, _module, _what)
