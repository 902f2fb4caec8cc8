"""Option files: read without running code, ``--force_yml`` without ``exec``, checked before training starts.

* :func:`load_options` / :class:`SafeOrderedLoader`: YAML through PyYAML's safe
  loader (plain values only: a ``!!python/...`` tag is an error naming the file
  and line), key order kept, a key given twice in one mapping refused, and
  aliases bounded: a document whose aliases would expand to more than
  :data:`MAX_YAML_NODES` values is refused before it is built (a 2 KB file of
  nested aliases would otherwise grow past memory wherever it is copied).
  BasicSR 1.4.2 parses option files with the unsafe loader, so a file could run code.
* :func:`apply_force_yml`: ``--force_yml train:total_iter=5000 name=x``; each
  value is read as a YAML value (``none`` is None, as in BasicSR). BasicSR 1.4.2
  builds a Python statement from the entry and ``exec``-s it (and ``eval``-s
  values starting with ``[``).
* :func:`check_options`: the typed schema of :mod:`rssr_utils.schema` (types,
  ranges, allowed keys, registered types, file arguments, network sizes, the
  experiment name), before anything is built.
"""

import re
from collections import OrderedDict

import yaml

from rssr_utils.schema.base import OptionError

__all__ = [
    'MAX_YAML_NODES',
    'OptionError',
    'SafeOrderedLoader',
    'apply_force_yml',
    'check_options',
    'load_options',
    'load_yaml',
    'parse_value',
]
# Values a YAML document may expand to, aliases counted as often as they are used.
MAX_YAML_NODES = 1_000_000


class SafeOrderedLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """PyYAML's safe loader: plain values only, mappings as ``OrderedDict`` in file order, no duplicate keys,
    aliases bounded (:data:`MAX_YAML_NODES`)."""

    def construct_document(self, node):
        _check_expansion(node)
        return super().construct_document(node)


def _check_expansion(root):
    """Refuse a node graph whose full expansion (each alias counted where it is used) is too large."""
    sizes, visiting = {}, set()

    def size(node):
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in visiting:
            raise yaml.constructor.ConstructorError(None, None, 'an alias refers to itself', node.start_mark)
        visiting.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        visiting.discard(id(node))
        sizes[id(node)] = total
        if total > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f'its aliases expand to more than {MAX_YAML_NODES:,} values; write the values out or use fewer '
                'nested aliases',
                node.start_mark,
            )
        return total

    size(root)


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
    except RecursionError:
        raise OptionError(f'{source}: not a valid option file (nested too deeply); flatten it.') from None


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


def check_options(opt, is_train, source='option file'):
    """Check a parsed option dict (after ``--force_yml``) with :func:`rssr_utils.schema.check_options`.

    Raises :class:`OptionError` with one line per problem (``<file>: <key>: <fix>``). Call it after rssr's
    registries are imported (the types are looked up).
    """
    from rssr_utils.schema import check_options as check

    check(opt, is_train, source)
