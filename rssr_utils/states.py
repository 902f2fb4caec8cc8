"""Training states: written so that a crash never leaves a partial file, read without running code, exact on resume.

BasicSR's ``<experiment>/training_states/<iter>.state`` holds the epoch, the
iteration and the optimizers' and schedulers' state dicts. rssr's patches
(:mod:`rssr_patches`) write it, and the ``net_g_<iter>.pth`` beside it, through
:func:`save_atomic` (temporary name, flush, fsync, rename), read it with
:func:`read_training_state` (``weights_only=True`` and an allow-list of the few
Python types a state needs) and add what an exact resume needs:

* ``rng``: the Python, NumPy and torch (CPU, and CUDA when present) random
  states at the save, i.e. after iteration ``iter`` and before the next batch
  is drawn;
* ``data``: the data position, ``{'epoch', 'batches', 'rng'}``: the sampler's
  epoch, the batches of it already trained on, and the random states at the
  start of that epoch (the data loader draws its workers' seeds from them).

On resume the first epoch's data loader is rebuilt from the epoch-start random
states and moved past the batches already used (by the sampler alone with
``num_worker_per_gpu: 0``; by loading them again with workers, whose random
augmentation depends on what they loaded), then the save-time random states are
restored. A run killed between saves and resumed from its last state then
repeats the uninterrupted run exactly (tests/test_training_states.py). States
without these entries (BasicSR's, or older rssr's) resume as BasicSR does: at
the start of the saved epoch, not exactly. Not exact either: distributed
training (only rank 0's random states are saved, so none are restored; data
positions are), ``persistent_workers: true`` (workers keep their random states
across epochs), ``prefetch_mode: cpu`` without workers (a thread draws the
augmentation ahead of the saves), and CUDA kernels that are not deterministic.
"""

import collections
import os
import random
import re
import zipfile
from os import path as osp

import numpy as np
import torch

from .torch_files import load_torch_file

# The Python types a training state may hold besides containers, numbers and tensors:
# MultiStepRestartLR keeps its milestones in a Counter.
SAFE_STATE_GLOBALS = (collections.Counter,)
STATE_NAME = re.compile(r'^(\d+)\.state$')
TMP_SUFFIX = '.tmp'


class StateError(ValueError):
    """A training state that cannot be used, with the file and the fix in the message."""


def save_atomic(obj, path, write=None):
    """Write ``obj`` to ``<path>.tmp``, flush and fsync it, then rename it to ``path``.

    A crash (kill -9, power loss) leaves either the previous file or the complete
    new one under ``path``, never a partial file; a stale ``.tmp`` is overwritten
    by the next save of the same name.

    Args:
        obj: What to write.
        path (str): Final file name.
        write (callable | None): ``write(obj, binary_file)``; default ``torch.save``.
    """
    path = os.fspath(path)
    tmp = path + TMP_SUFFIX
    try:
        with open(tmp, 'wb') as f:
            (write or torch.save)(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(osp.dirname(path) or '.')


def _fsync_dir(folder):
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_with_retry(obj, path, what, logger, retries=3):
    """:func:`save_atomic` with BasicSR's retries; a save that keeps failing is logged, as in BasicSR."""
    for attempt in range(retries, 0, -1):
        try:
            save_atomic(obj, path)
            return True
        except Exception as error:  # BasicSR retries on any error (full disk, network file systems)
            logger.warning(f'Save {what} error: {error}, remaining retry times: {attempt - 1}')
    logger.warning(f'Still cannot save {path}; training goes on without it.')
    return False


def read_training_state(path, map_location='cpu'):
    """Read a training state without running code from it.

    Args:
        path (str): A ``<iter>.state`` file.
        map_location: As in ``torch.load``. Default: 'cpu'.

    Returns:
        dict: At least ``epoch`` (int), ``iter`` (int), ``optimizers`` and
        ``schedulers`` (lists of state dicts).

    Raises:
        FileNotFoundError: No such file.
        StateError: A partial or foreign file, a file that asks for Python
            objects outside the allow-list (it could run code), or one without
            BasicSR's entries; the message names the file.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Resume state {path} does not exist; fix path.resume_state or drop it to start from scratch.'
        )
    state = load_torch_file(
        path,
        'training state',
        StateError,
        '(A training state holds only numbers, tensors and the types in rssr_utils.states.SAFE_STATE_GLOBALS.) '
        'Delete it or resume from another state.',
        safe_globals=SAFE_STATE_GLOBALS,
        map_location=map_location,
    )
    missing = [
        k for k in ('epoch', 'iter', 'optimizers', 'schedulers') if not isinstance(state, dict) or k not in state
    ]
    if missing:
        raise StateError(f'{path}: not a BasicSR training state (no {missing}).')
    return state


def _readable_checkpoint(path):
    """Whether a saved ``.pth`` is present and complete (its zip directory is read, not its tensors)."""
    if not osp.isfile(path):
        return f'{path} is missing'
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        return f'{path} is not a complete checkpoint ({error})'
    return None


def find_resume_state(state_dir, models_dir=None, networks=('g',), log=print):
    """The newest ``<iter>.state`` under ``state_dir`` that loads, with its network files present.

    Names that are not ``<iter>.state`` (``backup.state``, a ``.tmp`` left by a
    killed save) are ignored; states that do not load are skipped. Each is
    reported through ``log`` with the reason.

    Args:
        state_dir (str): ``experiments/<name>/training_states``.
        models_dir (str | None): ``experiments/<name>/models``; when given,
            ``net_<network>_<iter>.pth`` must be there and complete.
        networks (tuple[str]): Network labels saved with each state. Default: ('g',).
        log (callable): Receives one message per skipped file. Default: print.

    Returns:
        tuple[str, dict] | tuple[None, None]: The path and the loaded state.
    """
    if not osp.isdir(state_dir):
        return None, None
    candidates = []
    for name in sorted(os.listdir(state_dir)):
        found = STATE_NAME.match(name)
        if found:
            candidates.append((int(found.group(1)), name))
        elif name.endswith(TMP_SUFFIX):
            log(f'auto_resume: ignored {osp.join(state_dir, name)}: an unfinished save (a temporary file).')
        else:
            log(f'auto_resume: ignored {osp.join(state_dir, name)}: not named <iter>.state.')
    for current_iter, name in sorted(candidates, reverse=True):
        path = osp.join(state_dir, name)
        try:
            state = read_training_state(path)
        except StateError as error:
            log(f'auto_resume: skipped {path}: {error}')
            continue
        problems = (
            []
            if models_dir is None
            else [_readable_checkpoint(osp.join(models_dir, f'net_{label}_{current_iter}.pth')) for label in networks]
        )
        problems = [p for p in problems if p]
        if problems:
            log(f'auto_resume: skipped {path}: {"; ".join(problems)}.')
            continue
        if state['iter'] != current_iter:
            log(f'auto_resume: skipped {path}: it holds iteration {state["iter"]}, not {current_iter}.')
            continue
        return path, state
    return None, None


def rng_state():
    """The Python, NumPy and torch random states (CUDA too when available), as weights-only-loadable values."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        'python': random.getstate(),
        'numpy': {
            'bit_generator': numpy_state['bit_generator'],
            'key': torch.from_numpy(numpy_state['state']['key'].astype(np.int64)),
            'pos': int(numpy_state['state']['pos']),
            'has_gauss': int(numpy_state['has_gauss']),
            'gauss': float(numpy_state['gauss']),
        },
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # never started CUDA: its seeds are untouched
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state['numpy']
    np.random.set_state(
        {
            'bit_generator': numpy_state['bit_generator'],
            'state': {'key': numpy_state['key'].numpy().astype(np.uint32), 'pos': numpy_state['pos']},
            'has_gauss': numpy_state['has_gauss'],
            'gauss': numpy_state['gauss'],
        }
    )
    torch.set_rng_state(state['torch'].cpu())
    if state.get('cuda') is not None and torch.cuda.is_available():
        cuda = [s.cpu() for s in state['cuda']]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class DataPosition:
    """Where the training loop is in its data, for :func:`resume_entries` and the resume.

    BasicSR's loop calls the prefetcher's ``reset`` at each epoch start and its
    ``next`` once per batch; rssr's patches of those (:mod:`rssr_patches`) call
    :meth:`start_epoch` and :meth:`count`. One training runs per process, so
    one instance (:data:`POSITION`) serves.
    """

    def __init__(self):
        self.epoch = None
        self.batches = 0
        self.epoch_rng = None
        self.pending = None  # the saved position to restore at the next epoch start
        self.restore_rng = True

    def resume_from(self, state, restore_rng=True):
        """Arrange for the next epoch start to continue from ``state`` (a loaded training state)."""
        self.pending = {'data': state['data'], 'rng': state['rng']} if 'data' in state and 'rng' in state else None
        self.restore_rng = restore_rng
        return self.pending is not None

    def clear(self):
        self.__init__()

    def start_epoch(self, loader, log=print):
        """Return the iterator for this epoch of ``loader``, moved to the saved position on resume."""
        epoch = getattr(getattr(loader, 'sampler', None), 'epoch', None)
        pending, self.pending = self.pending, None
        if pending is not None and pending['data']['epoch'] != epoch:
            log(
                f'Resume: the state was saved in epoch {pending["data"]["epoch"]} but training restarts at epoch '
                f'{epoch}; the data position is not restored.'
            )
            pending = None
        self.epoch, self.batches = epoch, 0
        if pending is None:
            self.epoch_rng = rng_state()
            return iter(loader)
        skip = pending['data']['batches']
        self.epoch_rng = pending['data']['rng']
        if getattr(loader, 'persistent_workers', False):
            log('Resume: persistent_workers keeps worker random states across epochs; the resume is not exact.')
        if skip >= len(loader):  # saved after the epoch's last batch: go on with the next epoch
            iterator = iter(())
        else:
            if self.restore_rng:
                set_rng_state(self.epoch_rng)
            iterator = iter(loader)
            _skip_batches(iterator, skip, loader, log)
        if self.restore_rng:
            set_rng_state(pending['rng'])
        self.batches = skip
        return iterator

    def count(self, batch):
        if batch is not None:
            self.batches += 1
        return batch

    def entries(self, epoch):
        """The ``rng`` and ``data`` entries of a state saved now, in ``epoch`` (empty if untracked)."""
        if self.epoch is None or self.epoch != epoch:
            return {}
        return {'rng': rng_state(), 'data': {'epoch': epoch, 'batches': self.batches, 'rng': self.epoch_rng}}


def _skip_batches(iterator, skip, loader, log):
    """Move a fresh data-loader iterator past ``skip`` batches."""
    sampler_iter = getattr(iterator, '_sampler_iter', None)
    if getattr(loader, 'num_workers', None) == 0 and sampler_iter is not None and type(loader) is _DataLoader:
        # In-process loading: only the batch indices are drawn, no image is read.
        for _ in range(skip):
            next(sampler_iter)
        return
    log(f'Resume: loading again the {skip} batches of this epoch already trained on (data-loader workers).')
    for _ in range(skip):
        next(iterator)


_DataLoader = torch.utils.data.DataLoader
POSITION = DataPosition()


def resume_entries(epoch):
    """What rssr adds to a training state saved in ``epoch`` (see the module docstring)."""
    return POSITION.entries(epoch)
