"""One typed schema (msgspec) for option files, model sidecars and degradation configs.

* :func:`check_options`: a parsed option file (train or test) checked before
  anything is created: types, ranges, allowed keys, registered types, file
  arguments, network sizes, the experiment ``name``. Every problem is one line
  ``<file>: <dotted key>: <what is wrong and the fix>``.
* :func:`check_network` (:mod:`.networks`): one network block; every builder
  calls it (:func:`rssr_utils.weights.build_network`).
* :func:`check_sidecar`: a ``model.json`` written by ``rssr-export``.
* :func:`upgrade_names`: rssr's old registry names (``Bicubic``...) mapped to
  the new ones (``RSSRBicubic``...) with a one-line notice.
* :func:`json_schema`: the schema as JSON Schema, for editors
  (``options/schema/rssr-options.schema.json``, ``scripts/make_schema.py``).

The structs are built from BasicSR's registries, so call these after rssr's
packages are imported (:func:`rssr_patches.import_registries`).
"""

import functools
import os
import sys
import typing

from .base import OptionError, convert
from .networks import check_network

__all__ = ['OptionError', 'check_network', 'check_options', 'check_sidecar', 'json_schema', 'upgrade_names']

# rssr's registry names before they said they were rssr's; option files and sidecars may still use them.
OLD_NAMES = {
    'Bicubic': 'RSSRBicubic',
    'UCMercedDataset': 'RSSRUCMercedDataset',
    'NWPUDataset': 'RSSRNWPUDataset',
    'AIDDataset': 'RSSRAIDDataset',
    'VGGFeatureLoss': 'RSSRVGGFeatureLoss',
}
# BasicSR's MultiStepLR is its MultiStepRestartLR.
_SCHEDULERS = {'MultiStepLR': 'MultiStepRestartLR', 'MultiStepRestartLR': 'MultiStepRestartLR'}
_SCHEDULERS['CosineAnnealingRestartLR'] = 'CosineAnnealingRestartLR'


def _registry_sizes():
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY

    return tuple(len(r.keys()) for r in (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY))


@functools.lru_cache(maxsize=4)
def _unions(_sizes):
    import torch
    from basicsr.models import lr_scheduler
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY

    from .calls import call_struct, registry_union
    from .datasets import dataset_union

    optimizers = [
        call_struct(f'Optimizer_{name}', cls, name, skip=('params',))
        for name, cls in sorted(vars(torch.optim).items())
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    ]
    schedulers = [
        call_struct(f'Scheduler_{name}', getattr(lr_scheduler, cls), name, skip=('optimizer',))
        for name, cls in sorted(_SCHEDULERS.items())
    ]
    return {
        'arch': registry_union('Arch', ARCH_REGISTRY, sizes=True),
        'dataset': dataset_union(),
        'loss': registry_union('Loss', LOSS_REGISTRY),
        'metric': registry_union('Metric', METRIC_REGISTRY, skip=('img', 'img2')),
        'optimizer': typing.Union[tuple(optimizers)],
        'scheduler': typing.Union[tuple(schedulers)],
    }


def unions():
    """The struct unions of the registered archs, data sets, losses, metrics, optimizers and schedulers."""
    return _unions(_registry_sizes())


def registered(registry, name):
    """The class registered as ``name`` (or ``name_basicsr``, as BasicSR's ``get`` finds it); None if none."""
    from .calls import lookup

    return lookup(registry, name)


def arch_union():
    return unions()['arch']


@functools.lru_cache(maxsize=8)
def _structs(_sizes, strict):
    from .option_file import options_struct, train_struct, val_struct

    u = _unions(_sizes)
    train = train_struct(u['optimizer'], u['scheduler'], u['loss'], strict)
    val = val_struct(u['metric'], strict)
    return options_struct(u['arch'], u['dataset'], train, val, strict), train, val


def structs(strict=True):
    """``(options, train, val)`` structs (``strict``: unknown keys refused)."""
    return _structs(_registry_sizes(), strict)


def upgrade_names(opt, source, say=None):
    """Replace rssr's old registry names in ``opt`` (in place) and say so once per name, in one line each."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    blocks = [(k, v) for k, v in opt.items() if k.startswith('network_')]
    blocks += [(f'datasets.{k}', v) for k, v in (opt.get('datasets') or {}).items()]
    blocks += [(f'train.{k}', v) for k, v in (opt.get('train') or {}).items() if str(k).endswith('_opt')]
    for key, block in blocks:
        if isinstance(block, dict) and isinstance(block.get('type'), str) and block['type'] in OLD_NAMES:
            new = OLD_NAMES[block['type']]
            say(f'rssr: {source}: {key}.type {block["type"]!r} is now {new!r} (the old name still works; rename it).')
            block['type'] = new
    return opt


def check_name(name, source):
    """The experiment ``name`` is one folder name under ``experiments/`` (or ``results/``)."""
    if not isinstance(name, str):
        return
    if (
        not name.strip()
        or name in ('.', '..')
        or '/' in name
        or '\\' in name
        or '\0' in name
        or os.path.isabs(name)
        or '..' in name.split(os.sep)
    ):
        raise OptionError(
            f'{source}: name: {name!r} must be one folder name (no /, \\, .. or absolute path): '
            'the experiment is written to experiments/<name>'
        )


def _first(problems, func, *args):
    try:
        func(*args)
    except OptionError as error:
        problems.append(str(error))


def _file_policy(opt):
    return 'trusted' if opt.get('allow_file_arguments') is True else 'options'


def check_options(opt, is_train, source='option file'):
    """Check a parsed option file (after ``--force_yml``); raise one :class:`OptionError` listing each problem.

    Integral floats where an int is expected are replaced by ints in ``opt``.
    """
    from .datasets import check_dataset
    from .networks import check_file_arguments
    from .option_file import is_known_model

    upgrade_names(opt, source)
    strict = is_known_model(opt.get('model_type'))
    top, train_type, val_type = structs(strict)
    u = unions()
    problems = []
    blocks = {'datasets', 'train', 'val'} | {k for k in opt if str(k).startswith('network_')}
    rest = {k: v for k, v in opt.items() if k not in blocks}
    _first(problems, convert, rest, top, '')
    opt.update(rest)
    _first(problems, check_name, opt.get('name'), source)
    _first(problems, _check_model_type, opt.get('model_type'))
    _first(problems, _check_radiometry, opt.get('radiometry'))
    required = ['name', 'model_type', 'network_g', 'datasets', 'path'] + (['train', 'logger'] if is_train else [])
    problems += [f'{k}: missing (a required key)' for k in required if k not in opt]
    policy = _file_policy(opt)
    for key in sorted(k for k in opt if str(k).startswith('network_')):
        _first(problems, check_network, opt[key], key, '', policy, u['arch'])
    scale_problem = _first_scale_problem(opt)
    if scale_problem:
        problems.append(scale_problem)
    datasets = opt.get('datasets')
    if isinstance(datasets, dict):
        for phase, dataset_opt in datasets.items():
            problems += check_dataset(phase, dataset_opt, opt.get('scale'), is_train, None, u['dataset'])
        if is_train and 'train' not in datasets:
            problems.append('datasets.train: missing (training needs a train data set)')
    elif datasets is not None:
        problems.append(f'datasets: expected a mapping of phases, got {datasets!r}')
    train = opt.get('train')
    if is_train and isinstance(train, dict):
        slots = {k: v for k, v in train.items() if str(k).endswith('_opt')}
        plain = {k: v for k, v in train.items() if k not in slots}
        _first(problems, convert, plain, train_type, 'train')
        train.update(plain)
        for key in ('total_iter', 'optim_g', 'scheduler'):
            if key not in train:
                problems.append(f'train.{key}: missing (a required key for training)')
        for slot, loss in slots.items():  # LOSS_SLOTS and any other `*_opt` a model may read
            if loss is None:
                continue
            found = len(problems)
            _first(problems, convert, loss, u['loss'], f'train.{slot}')
            if len(problems) == found:
                _first(problems, check_file_arguments, f'train.{slot}', loss, loss['type'], '', policy)
    elif is_train and train is not None:
        problems.append(f'train: expected a mapping, got {train!r}')
    val = opt.get('val')
    if isinstance(val, dict):
        metrics = val.get('metrics')
        plain = {k: v for k, v in val.items() if k != 'metrics'}
        _first(problems, convert, plain, val_type, 'val')
        val.update(plain)
        if is_train and 'val_freq' not in val:
            problems.append('val.val_freq: missing (training validates every val_freq iterations; or set val: ~)')
        if isinstance(metrics, dict):
            for name, metric in metrics.items():
                _first(problems, convert, metric, u['metric'], f'val.metrics.{name}')
        elif metrics is not None:
            problems.append(f'val.metrics: expected a mapping of metric names to their options, got {metrics!r}')
    elif val is not None:
        problems.append(f'val: expected a mapping (or ~ for no validation), got {val!r}')
    if problems:
        lines = '\n'.join(f'{source}: {line.lstrip(": ")}' for line in problems)
        raise OptionError(lines)


def _check_radiometry(spec):
    """The top-level ``radiometry`` (a profile name or numbers; see rssr_utils.radiometry) must resolve."""
    if spec is not None:
        from rssr_utils.radiometry import Radiometry, RadiometryError

        try:
            Radiometry.resolve(spec, 'radiometry')
        except RadiometryError as error:
            raise OptionError(str(error)) from None


def _check_model_type(model_type):
    from basicsr.utils.registry import MODEL_REGISTRY

    if isinstance(model_type, str) and registered(MODEL_REGISTRY, model_type) is None:
        raise OptionError(
            f'model_type: no model named {model_type!r} is registered; registered: {sorted(MODEL_REGISTRY.keys())}'
        )


def _first_scale_problem(opt):
    """``network_g.upscale`` (or ``scale``) against the top-level ``scale``."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from .calls import parameters

    net, scale = opt.get('network_g'), opt.get('scale')
    if not isinstance(net, dict) or not isinstance(scale, int) or net.get('type') not in ARCH_REGISTRY:
        return None
    cls = ARCH_REGISTRY.get(net['type'])
    named, _ = parameters(cls)
    for name in ('upscale', 'scale'):
        if name in named:
            value = net.get(name, named[name].default)
            if isinstance(value, int) and not isinstance(value, bool) and value != scale:
                given = '' if name in net else f" ({cls.__name__}'s default)"
                return (
                    f'network_g.{name} is {value}{given} but scale is {scale}: the network would make x{value} '
                    f'outputs for x{scale} pairs; set both to the same factor'
                )
            return None
    return None


def check_sidecar(sidecar, source):
    """A model sidecar (``model.json``): its ``network_g`` as :func:`check_network` with no file arguments."""
    upgrade_names(sidecar, source)
    check_network(sidecar.get('network_g'), 'network_g', source, policy='sidecar')
    for key in ('scale', 'pad_multiple'):
        value = sidecar.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1024):
            raise OptionError(f'{source}: {key}: expected a positive int, got {value!r}; re-export the model')


def json_schema():
    """The option-file schema as a JSON Schema document (dict), stable for the same registries."""
    import msgspec

    top, _, _ = structs(strict=True)
    schema = msgspec.json.schema(top)
    schema['$schema'] = 'https://json-schema.org/draft/2020-12/schema'
    schema['title'] = 'rssr / BasicSR 1.4.2 option file'
    return schema


SCHEMA_FILE = os.path.join('options', 'schema', 'rssr-options.schema.json')


def json_schema_text():
    """:func:`json_schema` as the text of :data:`SCHEMA_FILE` (sorted keys, one trailing newline)."""
    import json

    import basicsr
    import torch

    schema = json_schema()
    # The registries and torch.optim's signatures shape the schema; a test compares only under the same versions.
    schema['$comment'] = (
        f'Generated by scripts/make_schema.py (torch {torch.__version__.split("+")[0]}, basicsr '
        f'{basicsr.__version__}); do not edit.'
    )
    return json.dumps(schema, indent=1, sort_keys=True, default=list) + '\n'
