"""``datasets.<phase>`` blocks: the loader keys BasicSR reads, then the keys of the data set's type.

One struct per registered data set type, tagged by ``type``:

* the keys BasicSR's ``build_dataloader``/``build_dataset`` read
  (:data:`LOADER_FIELDS`), with their types and ranges;
* rssr's data sets: the keys of the ``opt (dict)`` list in their docstring
  (``gt_size (int): HR crop size. Required for training.``), typed from it,
  plus their ``EXTRA_KEYS`` and, for the presets, ``root``/``split``;
* BasicSR's (and other packages') data sets: the keys their source reads
  (``opt['gt_size']``, ``self.opt.get('use_rot')``, ``'x' in opt``), found
  by reading the class's code, typed by :data:`DATA_FIELDS` where the key is a
  common one and unchecked otherwise.
"""

import ast
import inspect
import re
import textwrap
import typing
from typing import Annotated, Any, Literal, Optional

import msgspec

from .base import MAX_SIZE, NonNegInt, OptionError, PosInt, convert
from .calls import lookup, registry_names, type_from_text

# Read by BasicSR's build_dataloader for every data set (datasets.<phase>.<key>).
LOADER_FIELDS = {
    'name': str,
    'phase': str,
    'scale': PosInt,
    'batch_size_per_gpu': PosInt,
    'num_worker_per_gpu': NonNegInt,
    'dataset_enlarge_ratio': PosInt,
    'use_shuffle': bool,
    'pin_memory': bool,
    'persistent_workers': bool,
    'prefetch_mode': Optional[Literal['cpu', 'cuda']],
    'num_prefetch_queue': PosInt,
}
# Keys many data sets read, typed for all of them.
DATA_FIELDS = {
    'dataroot_gt': str,
    'dataroot_lq': str,
    'meta_info_file': Optional[str],
    'filename_tmpl': str,
    'io_backend': dict,
    'gt_size': PosInt,
    'use_hflip': bool,
    'use_rot': bool,
    'mean': Optional[list[float]],
    'std': Optional[list[float]],
    'num_frame': Annotated[int, msgspec.Meta(ge=-1, le=MAX_SIZE, description='-1: all frames')],
    'cache_data': bool,
    'padding': str,
    'interval_list': list[PosInt],
    'random_reverse': bool,
    'color': Optional[str],
}
_REQUIRED = re.compile(r'Required(?: for (training))?(?: unless (\w+))?\.')


def _keys_read(cls):
    """The string keys ``cls``'s code (and its bases') reads from its ``opt`` dict."""
    keys = set()
    for klass in cls.__mro__:
        if klass.__module__.split('.')[0] in ('torch', 'builtins'):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            target, key = None, None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                target, key = node.value, node.slice.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'get':
                if node.args and isinstance(node.args[0], ast.Constant):
                    target, key = node.func.value, node.args[0].value
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.comparators:
                target, key = node.comparators[0], node.left.value
            name = getattr(target, 'id', None) or getattr(target, 'attr', None)
            if isinstance(key, str) and name in ('opt', 'dataset_opt'):
                keys.add(key)
    return keys


def _is_ours(cls):
    return cls.__module__.startswith('rssr_')


def own_keys(cls):
    """``{key: (type text, description)}`` of the ``opt (dict)`` lists in an rssr data set's docstring and its
    bases' (a subclass documents the keys it adds)."""
    found = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ''
        head = re.search(r'^\s*opt \(dict\):(.*?)(?::\s*$|\n\s*\w+ \()', doc, re.M | re.S)
        if head and 'except' in head.group(1):  # "The keys of X except ``a``, ``b`` and ``c``"
            for name in re.findall(r'``(\w+)``', head.group(1).split('except', 1)[1]):
                found.pop(name, None)
        if head:
            for match in re.finditer(r'^\s+(\w+) \(([^)]*)\):\s*((?:.*\n?)(?:\s{16,}.*\n?)*)', doc, re.M):
                if match.group(1) != 'opt':
                    found[match.group(1)] = (match.group(2), ' '.join(match.group(3).split()))
    return found


def dataset_struct(name, cls, shared=()):
    """The struct of data set type ``name`` (see the module docstring).

    ``shared``: keys other packages' data sets read; a BasicSR data set accepts
    them all (BasicSR's own files give REDSRecurrentDataset REDSDataset's
    ``dataroot_flow``, and BasicSR ignores keys nobody reads), a typo is refused.
    """
    fields = dict(LOADER_FIELDS)
    if _is_ours(cls):
        for key, (text, _) in own_keys(cls).items():
            fields[key] = type_from_text(text)
        for key in getattr(cls, 'EXTRA_KEYS', ()):
            fields.setdefault(key, Any)
        if hasattr(cls, 'expand_options'):
            fields.update(root=str, split=str)
    else:
        for key in sorted(set(_keys_read(cls)) | set(shared)):
            fields.setdefault(key, DATA_FIELDS.get(key, Any))
    safe = re.sub(r'\W', '_', name)
    return msgspec.defstruct(
        f'Dataset_{safe}',
        [(k, t, msgspec.UNSET) for k, t in fields.items() if k not in ('type',)],
        kw_only=True,
        forbid_unknown_fields=True,
        tag_field='type',
        tag=name,
        module=__name__,
    )


def dataset_union():
    from basicsr.utils.registry import DATASET_REGISTRY

    names = registry_names(DATASET_REGISTRY)
    classes = {n: lookup(DATASET_REGISTRY, n) for n in names}
    shared = set()
    for cls in classes.values():
        if not _is_ours(cls):
            shared |= _keys_read(cls)
    structs = [dataset_struct(n, classes[n], shared) for n in names]
    return typing.Union[tuple(structs)]


def _required(description, stage, dataset_opt):
    found = _REQUIRED.search(description)
    if found is None or (found.group(1) and stage != 'train'):
        return False
    return not (found.group(2) and dataset_opt.get(found.group(2)))


def check_dataset(phase, dataset_opt, scale, is_train, source, union):
    """Check ``datasets.<phase>``; return the problems (one line each, the first per block)."""
    from basicsr.utils.registry import DATASET_REGISTRY

    key = f'datasets.{phase}'
    stage = str(phase).split('_')[0]
    if stage not in ('train', 'val', 'test'):
        return [f'{key}: a phase is train, val* or test* (BasicSR reads the phase from the name)']
    if not isinstance(dataset_opt, dict):
        return [f'{key}: expected a mapping of the data set options, got {dataset_opt!r}']
    problems = []
    required = ['type', 'name'] + (['batch_size_per_gpu', 'num_worker_per_gpu'] if stage == 'train' else [])
    for option in required:
        if option not in dataset_opt and (stage != 'train' or is_train):
            problems.append(f'{key}.{option}: missing (a required key)')
    if problems:
        return problems
    try:
        convert(dataset_opt, union, key)
    except OptionError as error:
        return [str(error)]
    cls = lookup(DATASET_REGISTRY, dataset_opt['type'])
    if not _is_ours(cls) or (stage == 'train' and not is_train):
        return _gt_size(key, stage, dataset_opt, scale)
    expanded = dict(dataset_opt, phase=stage)
    if scale is not None:
        expanded['scale'] = scale  # BasicSR copies the top-level scale into every data set
    if hasattr(cls, 'expand_options'):
        expanded = cls.expand_options(expanded)
    for option, (_, description) in own_keys(cls).items():
        if option not in expanded and option != 'phase' and _required(description, stage, expanded):
            why = 'set the top-level scale' if option == 'scale' else description
            problems.append(f'{key}.{option}: missing ({why})')
    return problems or _gt_size(key, stage, expanded, scale)


def _gt_size(key, stage, dataset_opt, scale):
    gt_size = dataset_opt.get('gt_size')
    scale = dataset_opt.get('scale', scale)
    if stage == 'train' and isinstance(gt_size, int) and isinstance(scale, int) and scale > 0 and gt_size % scale:
        return [f'{key}.gt_size: {gt_size} is not a multiple of scale {scale}; the LR crop would not align']
    return []
