"""rssr's metrics: the remote-sensing metrics registered in BasicSR's ``METRIC_REGISTRY`` and the
no-reference LR consistency (:func:`~rssr_metrics.consistency.lr_consistency`)."""

import importlib
from os import path as osp

import rssr_compat  # noqa: F401  (must precede the first basicsr import)

from basicsr.utils import scandir

# Import every '*_metric.py' module so that its functions register themselves.
_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_metric.py'))
_modules = [importlib.import_module(f'rssr_metrics.{name}') for name in _names]

from .consistency import combine_reports, lr_consistency  # noqa: E402,F401
from .rs_metric import NoValidPixelsError, is_empty  # noqa: E402,F401
