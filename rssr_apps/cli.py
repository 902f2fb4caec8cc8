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


def infer(argv=None):
    """``rssr-infer``: tiled super-resolution of whole scenes (see :mod:`rssr_apps.inference`)."""
    from rssr_apps.inference import main

    return main(sys.argv[1:] if argv is None else argv)


def bench(argv=None):
    """``rssr-bench -opt options/benchmark_x4.yml``: quality and cost tables (see :mod:`rssr_apps.benchmark`)."""
    from rssr_apps.benchmark import main

    return main(sys.argv[1:] if argv is None else argv)


def demo(argv=None):
    """``rssr-demo``: the built-in demo (see :mod:`rssr_apps.demo`)."""
    from rssr_apps.demo import main

    return main(sys.argv[1:] if argv is None else argv)


def degrade(argv=None):
    """``rssr-degrade``: Real-ESRGAN second-order LR images (see :mod:`rssr_apps.degrade`)."""
    from rssr_apps.degrade import main

    return main(sys.argv[1:] if argv is None else argv)


def denoise(argv=None):
    """``rssr-denoise``: NLM / BM3D-denoised HR copies (see :mod:`rssr_apps.denoise`)."""
    from rssr_apps.denoise import main

    return main(sys.argv[1:] if argv is None else argv)


def lam(argv=None):
    """``rssr-lam -opt X.yml --image IMG --window X Y SIZE --output DIR`` (see :mod:`rssr_apps.lam`)."""
    from rssr_apps.lam import main

    return main(sys.argv[1:] if argv is None else argv)


def export(argv=None):
    """``rssr-export``: safetensors + sidecar and ONNX (see :mod:`rssr_apps.export`)."""
    from rssr_apps.export import main

    return main(sys.argv[1:] if argv is None else argv)
