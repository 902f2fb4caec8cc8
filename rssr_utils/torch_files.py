"""The one translator of ``torch.load`` errors: weights files and training states read through it.

``torch.load(weights_only=True)`` refuses pickles that ask for Python objects
(they could run code) and fails in several ways on damaged files (truncated
zip, foreign bytes). :func:`load_torch_file` turns each into one line that
names the file and the fix, raised as the caller's error class
(:class:`~rssr_utils.weights.WeightsError`, :class:`~rssr_utils.states.StateError`).
"""

import contextlib
import os
import pickle
import re
import zipfile

import torch


def looks_like_pickle(path):
    """A plain pickle (protocol 2+) or a torch.save zip: refused content, not a damaged file."""
    with open(path, 'rb') as f:
        head = f.read(4)
    return head[:1] == b'\x80' or head == b'PK\x03\x04'


def load_torch_file(path, what, error_class, refused_fix, safe_globals=(), map_location='cpu'):
    """``torch.load(weights_only=True)`` whose errors are one line naming ``path`` and the fix.

    Args:
        path (str): The file.
        what (str): What the file should be, for the messages ('PyTorch checkpoint', 'training state').
        error_class (type): The exception raised (a ValueError subclass).
        refused_fix (str): The sentence that says what to do with a file that asks for Python objects.
        safe_globals (Sequence[type]): Python types allowed besides containers, numbers and tensors.
        map_location: As ``torch.load``. Default: 'cpu'.
    """
    path = os.fspath(path)
    allowed = contextlib.nullcontext()
    if safe_globals:  # torch >= 2.5 has the context manager; older releases only the global allow-list
        if hasattr(torch.serialization, 'safe_globals'):
            allowed = torch.serialization.safe_globals(list(safe_globals))
        else:
            torch.serialization.add_safe_globals(list(safe_globals))
    try:
        with allowed:
            return torch.load(path, map_location=map_location, weights_only=True)  # never code from a file
    except pickle.UnpicklingError as error:
        found = re.search(r'GLOBAL (\S+)', str(error))
        if found is None and not looks_like_pickle(path):  # a damaged or foreign file
            raise error_class(f'{path}: not a readable {what}; is the file complete?') from error
        asked = f'the Python object {found.group(1)}' if found else 'pickle instructions beyond plain tensors'
        raise error_class(
            f'{path}: asks to load {asked}, which could run code from the file, so it was refused. {refused_fix}'
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise error_class(
            f'{path}: not a readable {what} ({type(error).__name__}: {error}); is the file complete?'
        ) from error
