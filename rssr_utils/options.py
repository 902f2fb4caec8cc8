"""Option files: read without running code, ``--force_yml`` without ``exec``, checked before training starts.

* :func:`load_options` / :class:`SafeOrderedLoader`: YAML through PyYAML's safe
  loader (plain values only: a ``!!python/...`` tag is an error naming the file
  and line), key order kept, a key given twice in one mapping refused. BasicSR
  1.4.2 parses option files with the unsafe loader, so a file could run code.
* :func:`apply_force_yml`: ``--force_yml train:total_iter=5000 name=x``; each
  value is read as a YAML value (``none`` is None, as in BasicSR). BasicSR 1.4.2
  builds a Python statement from the entry and ``exec``-s it (and ``eval``-s
  values starting with ``[``).
* :func:`check_options`: before anything is built, every problem in the option
  dict is listed with its key (``network_g.embed_dim: expected int, got str
  '64'``): missing keys, types, booleans (strict: ``'no'`` is not false),
  unknown network options, registered types and ``network_g.upscale`` against
  ``scale``. The types come from the classes: the ``Args:`` docstrings of
  rssr's archs, losses and datasets (``name (int | None): ... Required for
  training.``), the annotations and defaults of ``torch.optim`` optimizers;
  BasicSR's own classes are checked for unknown and missing keys only. The few
  framework keys BasicSR reads itself are in :data:`FRAMEWORK_KEYS`.
"""

import inspect
import math
import re
import types
import typing
from collections import OrderedDict

import yaml

# Keys BasicSR's train/test pipelines read themselves: dotted key -> (type spec, required when).
# `train`: required for training only; `always`: for training and testing; None: optional.
FRAMEWORK_KEYS = {
    'name': ('str', 'always'),
    'model_type': ('str', 'always'),
    'scale': ('int', None),
    'num_gpu': ('int | str', 'always'),
    'manual_seed': ('int | None', None),
    'radiometry': ('str | dict | None', None),
    'datasets': ('dict', 'always'),
    'path': ('dict', 'always'),
    'network_g': ('dict', 'always'),
    'train': ('dict', 'train'),
    'train.total_iter': ('int', 'train'),
    'train.warmup_iter': ('int', None),
    'train.ema_decay': ('float', None),
    'train.optim_g': ('dict', 'train'),
    'train.scheduler': ('dict', 'train'),
    'train.output_weights': ('list | None', None),
    'logger': ('dict', 'train'),
    'logger.print_freq': ('int', 'train'),
    'logger.save_checkpoint_freq': ('int', 'train'),
    'logger.use_tb_logger': ('bool', None),
    'val': ('dict | None', None),
    'val.val_freq': ('int', 'train'),
    'val.save_img': ('bool', None),
    'val.metrics': ('dict | None', None),
    'path.pretrain_network_g': ('str | None', None),
    'path.strict_load_g': ('bool', None),
    'path.param_key_g': ('str | None', None),
    'path.resume_state': ('str | None', None),
}
# Per data set (datasets.<phase>.<key>), read by BasicSR's data loader builder.
LOADER_KEYS = {
    'type': ('str', 'always'),
    'name': ('str', 'always'),
    'batch_size_per_gpu': ('int', 'train'),
    'num_worker_per_gpu': ('int', 'train'),
    'dataset_enlarge_ratio': ('int', None),
    'use_shuffle': ('bool', None),
    'pin_memory': ('bool', None),
    'persistent_workers': ('bool', None),
    'num_prefetch_queue': ('int', None),
}
PREFETCH_MODES = (None, 'cpu', 'cuda')
SCHEDULERS = {'MultiStepLR': 'MultiStepRestartLR', 'MultiStepRestartLR': 'MultiStepRestartLR'}
SCHEDULERS['CosineAnnealingRestartLR'] = 'CosineAnnealingRestartLR'
_BASE_TYPES = {
    'int': int,
    'float': float,
    'bool': bool,
    'str': str,
    'dict': dict,
    'list': list,
    'tuple': list,
    'None': type(None),
    'none': type(None),
}


class OptionError(ValueError):
    """Bad option file or ``--force_yml`` entry; the message names the file and every bad key."""


class SafeOrderedLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """PyYAML's safe loader: plain values only, mappings as ``OrderedDict`` in file order, no duplicate keys."""


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    mapping = OrderedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                'while reading a mapping', node.start_mark, f'found the key {key!r} twice', key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_message(error, source):
    mark = getattr(error, 'problem_mark', None)
    where = f'{source}, line {mark.line + 1}' if mark is not None else source
    problem = getattr(error, 'problem', None) or str(error)
    tag = re.search(r"tag '?(tag:yaml\.org,2002:python/[^' ]+|![^' ]+)", problem)
    if tag:
        return (
            f'{where}: the tag {tag.group(1).replace("tag:yaml.org,2002:", "!!")} was refused; option files hold '
            'plain values (numbers, strings, lists, mappings) and are never allowed to create Python objects.'
        )
    return f'{where}: not a valid option file ({problem}).'


def load_yaml(stream, source='<string>'):
    """Parse YAML text or a stream with :class:`SafeOrderedLoader`; errors name ``source`` and the line."""
    try:
        return yaml.load(stream, Loader=SafeOrderedLoader)
    except yaml.YAMLError as error:
        raise OptionError(_yaml_message(error, source)) from None


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_options(path, ordered=False):
    """Read an option file (any YAML mapping) without running code from it.

    Args:
        path (str): The ``.yml`` file.
        ordered (bool): Mappings as ``OrderedDict`` (as BasicSR's parser gives
            them) instead of plain dicts. Default: False.

    Returns:
        dict: The options, in file order.
    """
    try:
        with open(path, encoding='utf-8') as f:
            opt = load_yaml(f, str(path))
    except OSError as error:
        raise OptionError(f'{path}: cannot read the option file ({error.strerror or error}).') from None
    if not isinstance(opt, dict):
        raise OptionError(f'{path}: an option file is a YAML mapping (key: value lines), not {type(opt).__name__}.')
    return opt if ordered else _plain(opt)


def parse_value(text):
    """A ``--force_yml`` value as YAML reads it (``none``/``None`` are None, as BasicSR reads them)."""
    if text.strip().lower() == 'none':
        return None
    return _plain(load_yaml(text, f'--force_yml value {text!r}'))


def apply_force_yml(opt, entries):
    """Apply ``--force_yml key:sub=value`` entries to ``opt`` in place (no code is run; keys must lead somewhere).

    The last key may be new (as in BasicSR); the keys before it must exist and
    hold mappings.
    """
    for entry in entries or ():
        keys, sep, text = entry.partition('=')
        path = [k.strip() for k in keys.split(':')]
        if not sep or not all(path):
            raise OptionError(f'--force_yml {entry!r}: expected key:subkey=value, e.g. train:total_iter=5000.')
        node = opt
        for depth, key in enumerate(path[:-1]):
            if not isinstance(node.get(key), dict):
                where = '.'.join(path[: depth + 1])
                raise OptionError(f'--force_yml {entry!r}: the option file has no section {where}.')
            node = node[key]
        node[path[-1]] = parse_value(text.strip())
    return opt


# ---------------------------------------------------------------- type specs


def _spec_from_text(text):
    """``'int | list[int]'`` -> ``(int, (list, int))``; None when a part is not a plain YAML type."""
    parts = [p.strip() for p in re.split(r'\||\bor\b|,(?![^\[]*\])', text) if p.strip()]
    found = []
    for part in parts:
        base, _, inner = part.partition('[')
        base = base.strip()
        if base not in _BASE_TYPES:
            return None
        kind = _BASE_TYPES[base]
        element = _spec_from_text(inner.rstrip(']')) if inner and kind is list else None
        found.append((list, element[0]) if element and len(element) == 1 else kind)
    return tuple(dict.fromkeys(found)) or None


def _spec_from_annotation(annotation):
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return _spec_from_text(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(types, 'UnionType', None)):
        found = []
        for arg in typing.get_args(annotation):
            if getattr(arg, '__name__', '') == 'Tensor':
                continue  # never in an option file
            spec = _spec_from_annotation(arg)
            if spec is None:
                return None
            found.extend(spec)
        return tuple(dict.fromkeys(found)) or None
    base = origin or annotation
    if base is type(None) or base is None:
        return (type(None),)
    if base in (list, tuple, typing.List, typing.Tuple):
        return (list,)
    if base in (int, float, bool, str, dict):
        return (base,)
    return None


def _spec_from_default(default):
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, (tuple, list)):
        return (list,)
    if type(default) in (int, float, bool, str, dict):
        return (type(default),)
    return None


def _docstring_args(obj):
    """``{name: (type text, description)}`` from the ``Args:`` section of ``obj``'s docstring."""
    doc = inspect.getdoc(obj) or ''
    found, current = {}, None
    for line in doc.splitlines():
        match = re.match(r'^\s*(\w+) \(([^)]*)\):\s*(.*)$', line)
        if match:
            current = match.group(1)
            found[current] = [match.group(2), match.group(3)]
        elif current and line.strip() and not line.strip().endswith(':'):
            found[current][1] += ' ' + line.strip()
        else:
            current = None
    return {k: (t, ' '.join(d.split())) for k, (t, d) in found.items()}


def _is_ours(cls):
    return getattr(cls, '__module__', '').startswith('rssr_')


def _type_name(spec):
    names = {int: 'int', float: 'float', bool: 'bool', str: 'str', dict: 'mapping', list: 'list', type(None): 'None'}
    return ' or '.join(f'list of {names[k[1]]}' if isinstance(k, tuple) else names[k] for k in spec)


def _fits_kind(value, kind):
    if isinstance(kind, tuple):  # (list, element kind)
        return isinstance(value, (list, tuple)) and all(_fits_kind(v, kind[1]) for v in value)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return numeric and (not isinstance(value, float) or math.isfinite(value))
    if kind is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def _fits(value, spec):
    return any(_fits_kind(value, kind) for kind in spec)


def _hint(value, spec):
    if not isinstance(value, str):
        return ''
    if bool in spec:
        return ' (write true or false, unquoted)'
    if float in spec and re.fullmatch(r'[-+]?\d+(\.\d*)?[eE][-+]?\d+', value.strip()):
        return f' (YAML reads {value} as text: write it with a dot, e.g. 1.0e-4, or as !!float {value})'
    try:
        float(value)
    except ValueError:
        return ''
    return ' (a number in quotes: remove the quotes)'


class _Problems(list):
    def type(self, key, value, spec):
        if spec and not _fits(value, spec):
            self.append(f'{key}: expected {_type_name(spec)}, got {type(value).__name__} {value!r}{_hint(value, spec)}')
            return False
        return True

    def missing(self, key, why=''):
        self.append(f'{key}: missing{why}')


def _get(opt, dotted):
    node = opt
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _check_table(problems, opt, table, prefix, is_train):
    for key, (text, required) in table.items():
        present, value = _get(opt, key)
        _, parent = _get(opt, key.rpartition('.')[0]) if '.' in key else (True, opt)
        if not present:
            # A key is missing only where its section is there (`val: ~` needs no val_freq).
            if isinstance(parent, dict) and (required == 'always' or (required == 'train' and is_train)):
                problems.missing(prefix + key)
            continue
        problems.type(prefix + key, value, _spec_from_text(text))


def _check_call(problems, key, cls, kwargs, skip=(), check_types=None):
    """Check ``kwargs`` against ``cls``'s constructor (or a function's signature); return the parameters."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}
    params = {n: p for n, p in signature.parameters.items() if n not in skip and n != 'self'}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    name = getattr(cls, '__name__', str(cls))
    for option in kwargs:
        if option not in named and not takes_any:
            problems.append(f'{key}.{option}: {name} takes no such option; it takes {sorted(named)}')
    for option, param in named.items():
        if param.default is inspect.Parameter.empty and option not in kwargs:
            problems.missing(f'{key}.{option}', f' ({name} needs it)')
    if check_types is None:
        check_types = _is_ours(cls)
    doc = _docstring_args(cls) if check_types else {}
    for option, value in kwargs.items():
        param = named.get(option)
        if param is None:
            continue
        spec = None
        if option in doc:
            spec = _spec_from_text(doc[option][0])
        if spec is None and check_types:
            spec = _spec_from_annotation(param.annotation) or _spec_from_default(param.default)
            if spec is not None and param.default is None:
                spec = spec + (type(None),)
        if spec is not None and check_types:
            problems.type(f'{key}.{option}', value, spec)
        elif isinstance(value, str) and type(param.default) in (bool, int, float):
            # Other packages' classes: only the clear case, text where the default is a number or a boolean.
            problems.type(f'{key}.{option}', value, (type(param.default),))
    return named


def _registered(problems, key, type_name, registry, kind):
    """The class (or function) registered as ``type_name``; None with a problem added."""
    if type_name is None:
        problems.missing(f'{key}.type', f' (the {kind} to build)')
        return None
    if not isinstance(type_name, str):
        problems.type(f'{key}.type', type_name, (str,))
        return None
    try:
        return registry.get(type_name)
    except KeyError:
        problems.append(
            f'{key}.type: no {kind} named {type_name!r} is registered; registered: {sorted(registry.keys())}'
        )
        return None


def _check_network(problems, key, net_opt, scale):
    from basicsr.utils.registry import ARCH_REGISTRY

    cls = _registered(problems, key, net_opt.get('type'), ARCH_REGISTRY, 'network')
    if cls is None:
        return
    kwargs = {k: v for k, v in net_opt.items() if k != 'type'}
    params = _check_call(problems, key, cls, kwargs)
    if not isinstance(scale, int) or isinstance(scale, bool):
        return
    for name in ('upscale', 'scale'):
        param = params.get(name)
        if param is None:
            continue
        value = kwargs.get(name, param.default)
        if isinstance(value, int) and not isinstance(value, bool) and value != scale:
            given = '' if name in kwargs else f" ({cls.__name__}'s default)"
            problems.append(
                f'{key}.{name} is {value}{given} but scale is {scale}: the network would make x{value} outputs '
                f'for x{scale} pairs; set both to the same factor'
            )
        break


def _dataset_spec(cls):
    """``{key: (type spec, description)}`` of the keys in the data set's ``opt (dict)`` docstring."""
    for klass in cls.__mro__:
        doc = _docstring_args(klass)
        if 'opt' in doc:
            return {k: v for k, v in doc.items() if k != 'opt'}
    return {}


def _required(description, phase, dataset_opt):
    found = re.search(r'Required(?: for (training))?(?: unless (\w+))?\.', description)
    if found is None:
        return False
    if found.group(1) and phase != 'train':
        return False
    return not (found.group(2) and dataset_opt.get(found.group(2)))


def _check_dataset(problems, phase, dataset_opt, scale):
    from basicsr.utils.registry import DATASET_REGISTRY

    key = f'datasets.{phase}'
    stage = phase.split('_')[0]
    _check_table(problems, dataset_opt, LOADER_KEYS, key + '.', is_train=stage == 'train')
    if dataset_opt.get('prefetch_mode') not in PREFETCH_MODES:
        problems.append(
            f'{key}.prefetch_mode: expected one of {list(PREFETCH_MODES)}, got {dataset_opt["prefetch_mode"]!r}'
        )
    cls = (
        _registered(problems, key, dataset_opt.get('type'), DATASET_REGISTRY, 'dataset')
        if 'type' in dataset_opt
        else None
    )
    if cls is None or not _is_ours(cls):
        return
    expanded = dict(dataset_opt, phase=stage)
    if scale is not None:
        expanded['scale'] = scale  # BasicSR copies the top-level scale into every data set; checked there
    if hasattr(cls, 'expand_options'):
        expanded = cls.expand_options(expanded)
    for option, (text, description) in _dataset_spec(cls).items():
        if option == 'phase' or (option == 'scale' and scale is not None):
            continue
        if option not in expanded:
            if _required(description, stage, expanded):
                why = 'set the top-level scale' if option == 'scale' else description
                problems.missing(f'{key}.{option}', f' ({why})')
            continue
        problems.type(f'{key}.{option}', expanded[option], _spec_from_text(text))
    gt_size, scale = expanded.get('gt_size'), expanded.get('scale')
    if stage == 'train' and _fits(gt_size, (int,)) and _fits(scale, (int,)) and scale > 0 and gt_size % scale:
        problems.append(f'{key}.gt_size: {gt_size} is not a multiple of scale {scale}; the LR crop would not align')


def _check_training(problems, train):
    import torch
    from basicsr.models import lr_scheduler
    from basicsr.utils.registry import LOSS_REGISTRY

    optim = train.get('optim_g')
    if isinstance(optim, dict):
        name = optim.get('type')
        cls = getattr(torch.optim, name, None) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            problems.append(f'train.optim_g.type: {name!r} is not a torch.optim optimizer (e.g. Adam, AdamW, SGD)')
        else:
            kwargs = {k: v for k, v in optim.items() if k != 'type'}
            _check_call(problems, 'train.optim_g', cls, kwargs, skip=('params',), check_types=True)
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict):
        name = scheduler.get('type')
        if name not in SCHEDULERS:
            problems.append(f'train.scheduler.type: expected one of {sorted(SCHEDULERS)}, got {name!r}')
        else:
            kwargs = {k: v for k, v in scheduler.items() if k != 'type'}
            cls = getattr(lr_scheduler, SCHEDULERS[name])
            _check_call(problems, 'train.scheduler', cls, kwargs, ('optimizer',), check_types=True)
    for slot, loss_opt in train.items():
        if not slot.endswith('_opt') or loss_opt is None:
            continue
        if not isinstance(loss_opt, dict):
            problems.type(f'train.{slot}', loss_opt, (dict, type(None)))
            continue
        cls = _registered(problems, f'train.{slot}', loss_opt.get('type'), LOSS_REGISTRY, 'loss')
        if cls is not None:
            _check_call(problems, f'train.{slot}', cls, {k: v for k, v in loss_opt.items() if k != 'type'})
    decay = train.get('ema_decay')
    if _fits(decay, (float,)) and not 0 <= decay < 1:
        problems.append(f'train.ema_decay: {decay} is outside [0, 1)')


def _check_metrics(problems, metrics):
    from basicsr.utils.registry import METRIC_REGISTRY

    for name, metric in (metrics or {}).items():
        key = f'val.metrics.{name}'
        if not isinstance(metric, dict):
            problems.type(key, metric, (dict,))
            continue
        func = _registered(problems, key, metric.get('type'), METRIC_REGISTRY, 'metric')
        if func is not None:
            kwargs = {k: v for k, v in metric.items() if k != 'type'}
            _check_call(problems, key, func, kwargs, skip=('img', 'img2'), check_types=True)


def _check_radiometry(problems, spec):
    from .radiometry import Radiometry, RadiometryError

    if isinstance(spec, (str, dict)):
        try:
            Radiometry.resolve(spec, 'radiometry')
        except RadiometryError as error:
            problems.append(str(error))


def check_options(opt, is_train, source='option file'):
    """Check a parsed option dict (after ``--force_yml``); raise :class:`OptionError` listing every problem.

    Call it after rssr's registries are imported (the types are looked up).
    """
    problems = _Problems()
    _check_table(problems, opt, FRAMEWORK_KEYS, '', is_train)
    num_gpu = opt.get('num_gpu')
    if isinstance(num_gpu, str) and num_gpu != 'auto':
        problems.append(f"num_gpu: expected an int or 'auto', got {num_gpu!r}")
    _check_radiometry(problems, opt.get('radiometry'))
    scale = opt.get('scale')
    if _fits(scale, (int,)) and scale < 1:
        problems.append(f'scale: expected a positive int, got {scale}')
    for key in opt:
        if key.startswith('network_') and isinstance(opt[key], dict):
            _check_network(problems, key, opt[key], scale)
    datasets = opt.get('datasets')
    if isinstance(datasets, dict):
        for phase, dataset_opt in datasets.items():
            stage = str(phase).split('_')[0]
            if stage not in ('train', 'val', 'test'):
                problems.append(f'datasets.{phase}: a phase is train, val* or test*')
            elif not isinstance(dataset_opt, dict):
                problems.type(f'datasets.{phase}', dataset_opt, (dict,))
            elif stage != 'train' or is_train:
                _check_dataset(problems, phase, dataset_opt, opt.get('scale'))
        if is_train and 'train' not in datasets:
            problems.missing('datasets.train')
    if is_train and isinstance(opt.get('train'), dict):
        _check_training(problems, opt['train'])
    if isinstance(opt.get('val'), dict):
        _check_metrics(problems, opt['val'].get('metrics'))
    if problems:
        lines = '\n  '.join(problems)
        raise OptionError(f'{source}: {len(problems)} problem(s) in the options:\n  {lines}')
