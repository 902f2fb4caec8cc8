"""What every command checks before it writes: numbers in range, outputs apart from inputs, no silent replacing.

* :func:`int_in` / :func:`float_in` (and :data:`positive_int`,
  :data:`non_negative_int`) are argparse ``type=`` callables: a number out of
  range is refused by argparse with one line naming the flag and the range.
* :func:`check_apart` refuses an output that is, contains or lies inside one of
  the inputs (files or folders, LMDBs included), comparing real paths, so
  symlinks and ``..`` cannot hide it. It runs before anything is created.
* :func:`check_replace` refuses existing outputs unless ``--overwrite``.
"""

import argparse
import math
import os
from os import path as osp


def _range_text(lo, hi):
    if hi is None:
        return f'at least {lo}'
    if lo is None:
        return f'at most {hi}'
    return f'from {lo} to {hi}'


def int_in(lo=None, hi=None, odd=False):
    """An argparse type: an integer in ``[lo, hi]`` (None: unbounded; ``odd``: odd only), else a one-line error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f'{value} is out of range: give an integer {_range_text(lo, hi)}')
        if odd and value % 2 == 0:
            raise argparse.ArgumentTypeError(f'{value} is even: give an odd integer {_range_text(lo, hi)}')
        return value

    parse.__name__ = 'integer'
    return parse


def float_in(lo=None, hi=None, above=False):
    """An argparse type: a finite number in ``[lo, hi]`` (``above``: strictly above ``lo``), else a one-line error."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        low_bad = lo is not None and (value <= lo if above else value < lo)
        if not math.isfinite(value) or low_bad or (hi is not None and value > hi):
            limit = f'above {lo}' + (f' and at most {hi}' if hi is not None else '') if above else _range_text(lo, hi)
            raise argparse.ArgumentTypeError(f'{text} is out of range: give a number {limit}')
        return value

    parse.__name__ = 'number'
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)


def _real(path):
    return osp.realpath(os.fsencode(path))


def check_apart(output, inputs, option='--output'):
    """Refuse an output that is, contains or lies inside an input (real paths compared).

    Args:
        output (str): The file or folder to be written (need not exist).
        inputs (list[str | None]): Files or folders read (None entries are skipped).
        option (str): The flag that names ``output``, for the message.

    Raises:
        ValueError: One line naming both paths and the fix.
    """
    out = _real(output)
    for item in inputs:
        if not item:
            continue
        real = _real(item)
        common = osp.commonpath([out, real])
        if common in (out, real):
            how = 'is' if out == real else 'contains' if common == out else 'lies inside'
            raise ValueError(
                f'{option} {output} {how} the input {item}: writing there could replace what is read; '
                f'choose an {option} outside the inputs. Nothing was written.'
            )


def check_replace(paths, overwrite, option='--overwrite'):
    """Refuse when any of ``paths`` exists, unless ``overwrite``; the message names the first and the flag."""
    existing = [p for p in paths if osp.lexists(p)]
    if existing and not overwrite:
        more = f' ({len(existing)} outputs exist)' if len(existing) > 1 else ''
        raise FileExistsError(f'{existing[0]} exists{more}; pass {option} to replace it. Nothing was written.')
    return existing
