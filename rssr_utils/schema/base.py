"""Shared pieces of the option schema: the error type, bounded number types, and one-line conversion errors.

Every value goes through :func:`convert` (``msgspec.convert`` with strict
types), which turns msgspec's ``ValidationError`` into one line naming the
source, the dotted key and the fix. Where BasicSR accepts a float that holds an
integer (its own files write ``save_checkpoint_freq: !!float 5e3``), the float
is replaced by the integer and the check goes on.
"""

import re
from typing import Annotated, Any

import msgspec

# Bounds that keep a typo from allocating the machine away; sizes, counts and iterations.
MAX_SIZE = 1 << 16  # any one size argument of a network or data set (channels, blocks, crop pixels)
MAX_ITER = 1 << 40  # iterations and frequencies
MAX_LIST = 256  # elements of a list argument

PosInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_SIZE)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_SIZE)]
Size = Annotated[int, msgspec.Meta(ge=0, le=MAX_SIZE)]
Iterations = Annotated[int, msgspec.Meta(ge=1, le=MAX_ITER)]
Frequency = Annotated[int, msgspec.Meta(ge=1, le=MAX_ITER, description='every how many iterations; at least 1')]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
PosFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Anything = Any


class OptionError(ValueError):
    """A bad option file, sidecar, config or flag; the message names the file, the key and the fix."""


def bounded_list(item):
    """A list of ``item`` with at most :data:`MAX_LIST` elements (JSON Schema ``maxItems``)."""
    return Annotated[list[item], msgspec.Meta(max_length=MAX_LIST)]


_PATH = re.compile(r'\.([A-Za-z_][\w]*)|\[(\d+)\]|\[\.\.\.\]')


def _steps(path):
    """``$.train.optim_g[0]`` -> ``['train', 'optim_g', 0]``."""
    steps = []
    for name, index in _PATH.findall(path[1:]):
        steps.append(name if name else int(index))
    return steps


def _at(value, steps):
    for step in steps:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, (list, tuple)) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def _set(value, steps, new):
    for step in steps[:-1]:
        value = value[step]
    value[steps[-1]] = new


def dotted(prefix, steps):
    """``('network_g', ['window_size', 1])`` -> ``network_g.window_size[1]``."""
    text = prefix
    for step in steps:
        text += f'[{step}]' if isinstance(step, int) else (f'.{step}' if text else step)
    return text


def _fix(expected, got_value):
    """The hint that follows a type error, for the common YAML slips."""
    if isinstance(got_value, str):
        if re.fullmatch(r'[-+]?\d+(\.\d*)?[eE][-+]?\d+', got_value.strip()) and 'float' in expected:
            return f' (YAML reads {got_value} as text: write it with a dot, e.g. 1.0e-4, or as !!float {got_value})'
        if got_value.strip().lower() in ('yes', 'no', 'on', 'off', 'true', 'false') and 'bool' in expected:
            return ' (write true or false, unquoted)'
        try:
            float(got_value)
            return ' (a number in quotes: remove the quotes)'
        except ValueError:
            pass
    return ''


_TYPE_WORDS = {'object': 'mapping', 'array': 'list', 'null': 'None'}


def _words(text):
    text = re.sub(r'`([^`]*)`', r'\1', text)
    return re.sub(r'\b(object|array|null)\b', lambda m: _TYPE_WORDS[m.group(1)], text)


def _info_at(type_, data, steps):
    """The ``msgspec.inspect`` node of ``type_`` at ``steps`` (tagged unions resolved from ``data``)."""
    from msgspec import inspect as mi

    node = mi.type_info(type_)
    for step in steps:
        while isinstance(node, mi.UnionType):
            tag = data.get('type') if isinstance(data, dict) else None
            picked = [t for t in node.types if getattr(t, 'tag', None) == tag or isinstance(t, mi.StructType)]
            picked = [t for t in picked if getattr(t, 'tag', None) == tag] or picked
            if not picked:
                return node
            node = picked[0]
        if isinstance(node, mi.StructType):
            node = next((f.type for f in node.fields if f.encode_name == step), None)
        elif isinstance(node, (mi.ListType, mi.DictType)):
            node = getattr(node, 'item_type', None) or getattr(node, 'value_type', None)
        else:
            return None
        data = data.get(step) if isinstance(data, dict) else None
        if node is None:
            return None
    return node


def _allowed(type_, data, steps):
    """The allowed values (a Literal) or ``type`` tags (a tagged union) at ``steps``, as a sorted list."""
    from msgspec import inspect as mi

    node = _info_at(type_, data, steps)
    values = set()
    for part in getattr(node, 'types', None) or ([node] if node is not None else []):
        if isinstance(part, mi.LiteralType):
            values |= set(part.values)
        elif isinstance(part, mi.StructType) and part.tag is not None:
            values.add(part.tag)
        elif isinstance(part, mi.NoneType):
            values.add(None)
    return sorted(values, key=str)


def message(error, data, prefix, type_=None):
    """One line from a msgspec ``ValidationError`` raised while converting ``data`` found at ``prefix``."""
    text = str(error)
    body, _, path = text.rpartition(' - at `')
    if not body:
        body, path = text, '$`'
    steps = _steps(path.rstrip('`'))
    unknown = re.match(r'Object contains unknown field `([^`]*)`', body)
    if unknown:
        return f'{dotted(prefix, steps + [unknown.group(1)])}: unknown key; remove it or fix its spelling'
    missing = re.match(r'Object missing required field `([^`]*)`', body)
    if missing:
        return f'{dotted(prefix, steps + [missing.group(1)])}: missing (a required key)'
    tag = re.match(r'Invalid (?:enum )?value \'?([^\']*)\'?', body)
    where = dotted(prefix, steps) or '(top level)'
    if tag and steps and steps[-1] == 'type':
        names = _allowed(type_, data, steps[:-1]) if type_ is not None else []
        return f'{where}: no registered type named {tag.group(1)!r}; registered: {names}'
    if tag:
        names = _allowed(type_, data, steps) if type_ is not None else []
        return f'{where}: {_at(data, steps)!r} is not allowed; use one of {names}'
    expected = re.match(r'Expected `([^`]*)`, got `([^`]*)`', body)
    got = _at(data, steps)
    if expected:
        return (
            f'{where}: expected {_words(expected.group(1))}, got {type(got).__name__} {got!r}'
            f'{_fix(expected.group(1), got)}'
        )
    body = _words(body)
    return f'{where}: {body[:1].lower()}{body[1:]}, got {got!r}'


def convert(data, type_, prefix='', source=None):
    """``data`` checked against ``type_``; an :class:`OptionError` of one line on the first problem.

    Integral floats are accepted (and replaced by ints, in ``data`` too) where an
    int is expected, as BasicSR accepts them.
    """
    for _ in range(10000):
        try:
            return msgspec.convert(data, type_, strict=True)
        except msgspec.ValidationError as error:
            body, _, path = str(error).rpartition(' - at `')
            steps = _steps(path.rstrip('`'))
            value = _at(data, steps)
            integral = isinstance(value, float) and value.is_integer() and abs(value) < 2**62
            if integral and re.match(r'Expected `[^`]*\bint\b', body) and steps:
                _set(data, steps, int(value))
                continue
            line = message(error, data, prefix, type_)
            raise OptionError(f'{source}: {line}' if source else line) from None
    raise OptionError(f'{source}: too many values to check')
