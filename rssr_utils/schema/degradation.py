"""Degradation configs (:func:`rssr_data.degradation_draws.load_config`): a struct generated from the defaults.

Each key of the defaults becomes a field whose type follows its default and
its name: ``*_prob`` are probabilities (or lists of them), ``*_range`` and
``blur_sigma*`` ``[low, high]`` pairs, ``kernel_list*`` and ``resize_modes``
lists of the names the defaults list, sizes positive ints. ``preset`` names a
base preset. Unknown keys are refused.
"""

import functools
from typing import Annotated, Literal, Optional

import msgspec

from .base import MAX_LIST, MAX_SIZE, PosInt, Probability, convert

Pair = Annotated[list[Annotated[float, msgspec.Meta(ge=0)]], msgspec.Meta(min_length=2, max_length=2)]
OddPair = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=MAX_SIZE)]], msgspec.Meta(min_length=2, max_length=2)]


def _field(name, default):
    default = list(default) if isinstance(default, tuple) else default
    if isinstance(default, bool):
        return bool
    if name.endswith(('_prob', '_prob2')):
        return (
            Annotated[list[Probability], msgspec.Meta(max_length=MAX_LIST)]
            if isinstance(default, list)
            else Probability
        )
    if name == 'kernel_range':
        return OddPair
    if name.endswith(('_range', '_range2')) or name.startswith('blur_sigma'):
        return Pair
    if isinstance(default, list) and default and all(isinstance(v, str) for v in default):
        return Annotated[list[Literal[tuple(default)]], msgspec.Meta(min_length=1, max_length=MAX_LIST)]
    if default is None:
        return Optional[Annotated[float, msgspec.Meta(gt=0, le=MAX_SIZE)]]
    if isinstance(default, int):
        return PosInt
    return float


@functools.lru_cache(maxsize=4)
def _struct(keys_defaults, presets):
    fields = [('preset', Literal[presets], msgspec.UNSET)]
    fields += [(k, _field(k, v), msgspec.UNSET) for k, v in keys_defaults]
    return msgspec.defstruct('DegradationConfig', fields, kw_only=True, forbid_unknown_fields=True, module=__name__)


def degradation_struct(defaults, presets):
    """The struct of a degradation config with the keys of ``defaults`` and a ``preset`` among ``presets``."""
    frozen = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in defaults.items())
    return _struct(frozen, tuple(sorted(presets)))


def check_degradation(config, defaults, presets, source):
    """Check a degradation config (dict) before it is used; integral floats become ints in place."""
    struct = degradation_struct(defaults, presets)
    convert(config, struct, '', source)
