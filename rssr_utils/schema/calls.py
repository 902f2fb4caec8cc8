"""msgspec structs generated from constructors: one per registered arch, loss, metric, optimizer or scheduler.

A struct's fields are the constructor's parameters. Their types come from the
type hints where the class has them (rssr's archs: precise, with ranges), else
from the ``Args:`` docstring (rssr's datasets and losses), else from the default
value (BasicSR's classes: ``num_feat=64`` is an int from 0 to
:data:`~.base.MAX_SIZE`, ``res_scale=1`` an int or a float, ``None`` anything).
Each struct is tagged by ``type`` with the registered name, so a union of them
is what a ``network_g`` or ``pixel_opt`` block may hold, and msgspec writes it
as JSON Schema.
"""

import inspect
import re
import types
import typing
from typing import Annotated, Any

import msgspec

from .base import MAX_SIZE, bounded_list

# Parameter names that take a number that may be a float even where the default is an int (`res_scale=1`).
_FLOATY = re.compile(r'(scale|ratio|weight|lr|range|mean|std|eps|alpha|beta|gamma|prob|decay|rate|momentum)$')
_NAMES = {'int': int, 'float': float, 'bool': bool, 'str': str, 'dict': dict, 'None': None, 'none': None}
_NAMES.update({'list': list, 'tuple': list})


def type_from_text(text, sizes=False):
    """A docstring type (``'int | list[int]'``, ``'tuple[float]'``, ``'str'``) as a type; Any when unclear.

    ``sizes``: ints are sizes (0 and up), as an arch's are.
    """
    found = []
    for part in (p.strip() for p in re.split(r'\||\bor\b|,(?![^\[]*\])', text) if p.strip()):
        base, _, inner = part.partition('[')
        if base.strip() not in _NAMES:
            return Any
        kind = _NAMES[base.strip()]
        if kind is list:
            element = type_from_text(inner.rstrip(']'), sizes) if inner else Any
            kind = bounded_list(element)
        elif kind is int:
            kind = Annotated[int, msgspec.Meta(ge=0 if sizes else -MAX_SIZE, le=MAX_SIZE)]
        elif kind is None:
            kind = type(None)
        found.append(kind)
    if not found:
        return Any
    return found[0] if len(found) == 1 else typing.Union[tuple(found)]


def _int_type(name, sizes):
    # Archs: an int default is a size (a float only for names like res_scale); elsewhere (schedulers'
    # eta_min=0, restart_weights=(1,)) an int default may be given as a float.
    bounded = Annotated[int, msgspec.Meta(ge=0 if sizes else -MAX_SIZE, le=MAX_SIZE)]
    if _FLOATY.search(name) or not sizes:
        return typing.Union[bounded, float]
    return bounded


def type_from_default(name, default, sizes):
    """The type a BasicSR class's parameter takes, from its default (``sizes``: ints are sizes, 0 and up)."""
    if default is inspect.Parameter.empty or default is None:
        return Any
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return _int_type(name, sizes)
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, (tuple, list)):
        if default and all(isinstance(v, int) and not isinstance(v, bool) for v in default):
            return bounded_list(_int_type(name, sizes))
        if default and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            return bounded_list(float)
        return bounded_list(Any)
    if isinstance(default, dict):
        return dict
    return Any


def _hint_usable(hint):
    """A type hint msgspec can check (Tensors and modules never come from an option file)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _hint_usable(typing.get_args(hint)[0])
    if origin in (typing.Union, getattr(types, 'UnionType', typing.Union), list, tuple, dict, typing.Literal):
        return all(_hint_usable(a) for a in typing.get_args(hint) if a is not Ellipsis)
    return hint in (int, float, bool, str, dict, list, type(None), Any) or isinstance(hint, (str, int, float))


def _docstring_types(obj):
    """``{name: type text}`` from the ``Args:`` section of ``obj``'s docstring (``name (int): ...`` lines)."""
    doc = inspect.getdoc(obj) or ''
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+) \(([^)]*)\):', doc, re.M)}


def _default(value):
    """A default msgspec can hold and JSON Schema can show; UNSET (no default shown) otherwise."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float('inf') else msgspec.UNSET
    if isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return msgspec.field(default_factory=lambda: list(value))
    return msgspec.UNSET


def parameters(func, skip=()):
    """The named parameters of ``func`` (a class: its constructor) and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}, True
    params = {n: p for n, p in signature.parameters.items() if n not in skip and n != 'self'}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named, takes_any


def call_struct(struct_name, func, tag, skip=(), sizes=False):
    """A struct tagged ``type: <tag>`` whose fields are ``func``'s parameters (see the module docstring).

    Args:
        struct_name (str): Name of the struct in the JSON Schema (unique).
        func (type | callable): The class or function that the block builds or calls.
        tag (str): The ``type`` value that selects it.
        skip (tuple[str]): Parameters filled by the framework (``params``, ``optimizer``, ``img``).
        sizes (bool): Ints without hints are sizes (0 and up): True for archs.
    """
    named, takes_any = parameters(func, skip)
    try:
        hints = typing.get_type_hints(func.__init__ if isinstance(func, type) else func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the defaults
        hints = {}
    documented = {}
    for klass in getattr(func, '__mro__', (func,)):
        if klass is not object:
            documented = {**_docstring_types(klass), **documented}
    fields = []
    for name, param in named.items():
        hint = hints.get(name)
        if hint is not None and _hint_usable(hint):
            kind = hint
        elif name in documented and type_from_text(documented[name]) is not Any:
            kind = type_from_text(documented[name], sizes)
        else:
            kind = type_from_default(name, param.default, sizes)
        if param.default is None and kind is not Any:
            kind = typing.Optional[kind]
        if param.default is inspect.Parameter.empty:
            fields.append((name, kind))
        else:
            fields.append((name, kind, _default(param.default)))
    return msgspec.defstruct(
        struct_name,
        fields,
        kw_only=True,
        forbid_unknown_fields=not takes_any,
        tag_field='type',
        tag=tag,
        module=__name__,
    )


def lookup(registry, name):
    """The class registered as ``name`` (or ``name_basicsr``, as BasicSR's ``get`` finds it); None if none."""
    if not isinstance(name, str):
        return None
    return registry._obj_map.get(name) or registry._obj_map.get(f'{name}_basicsr')


def registry_names(registry):
    """The names a registry answers to, sorted: its keys, and ``X`` for each ``X_basicsr`` (BasicSR's
    ``Registry.get`` falls back to the suffixed name)."""
    names = set(registry.keys())
    names |= {n[: -len('_basicsr')] for n in names if n.endswith('_basicsr')}
    return sorted(names)


def registry_union(prefix, registry, skip=(), sizes=False, only=None):
    """The union of the structs of every class in a BasicSR registry, sorted by name (a stable schema)."""
    structs = []
    for name in registry_names(registry):
        if only is not None and not only(name):
            continue
        safe = re.sub(r'\W', '_', name)
        structs.append(call_struct(f'{prefix}_{safe}', lookup(registry, name), name, skip, sizes))
    return typing.Union[tuple(structs)] if len(structs) > 1 else structs[0]
