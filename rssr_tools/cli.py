"""Console entry points: ``rssr-train``, ``rssr-test``, ``rssr-infer``, ``rssr-bench``, ``rssr-demo``, ``rssr-export``.

``scripts/<name>.py`` call the same functions. Train and test are BasicSR's
own pipelines with rssr's registries and :func:`rssr_compat.patch_basicsr`
applied, and ``experiments/``, ``results/`` and ``tb_logger/`` under the current
directory.
"""

import os
import sys


def _root_path():
    return os.path.abspath(os.getcwd())


def train():
    """``rssr-train -opt X.yml [--launcher pytorch] [--auto_resume] [--debug] [--force_yml k=v]``."""
    import rssr_tools

    rssr_tools.import_registries()
    from basicsr.train import train_pipeline

    train_pipeline(_root_path())


def test():
    """``rssr-test -opt X.yml``: BasicSR's test pipeline with rssr's registries."""
    import rssr_tools

    rssr_tools.import_registries()
    from basicsr.test import test_pipeline

    test_pipeline(_root_path())


def infer(argv=None):
    """``rssr-infer``: tiled super-resolution of whole scenes (see :mod:`rssr_tools.inference`)."""
    from rssr_tools.inference import main

    return main(sys.argv[1:] if argv is None else argv)


def bench(argv=None):
    """``rssr-bench -opt options/benchmark_x4.yml``: quality and cost tables (see :mod:`rssr_tools.benchmark`)."""
    from rssr_tools.benchmark import main

    return main(sys.argv[1:] if argv is None else argv)


def demo(argv=None):
    """``rssr-demo``: the built-in demo (see :mod:`rssr_tools.demo`)."""
    from rssr_tools.demo import main

    return main(sys.argv[1:] if argv is None else argv)


def export(argv=None):
    """``rssr-export``: safetensors + sidecar and ONNX (see :mod:`rssr_tools.export`)."""
    from rssr_tools.export import main

    return main(sys.argv[1:] if argv is None else argv)
