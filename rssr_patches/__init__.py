"""Every change rssr makes to BasicSR once it is imported, in one place.

BasicSR 1.4.2 is the newest release on PyPI; each change below says why it is
needed and for which version. Nothing here edits BasicSR's files.

The torchvision alias BasicSR needs before it can be imported is in
:mod:`rssr_compat` (it must run first and imports nothing of rssr).

* :func:`patch_basicsr` (run by every rssr entry point):

  - ``basicsr.train.load_resume_state``: read the state with
    ``weights_only=True`` (:mod:`rssr_utils.states`), on CPU or GPU;
    ``--auto_resume`` takes the newest ``<iter>.state`` that loads and says
    what it skipped; prepare the exact resume. Why: 1.4.2 unpickles anything,
    takes the highest number even from a partial file, fails on any other
    ``*.state`` name, and calls ``torch.cuda.current_device()``.
  - ``basicsr.utils.options.init_dist``: ``gloo`` when no GPU is present, and
    the process group is destroyed at exit. Why: 1.4.2 always picks NCCL and
    calls ``torch.cuda.set_device``, and never destroys the group: a gloo rank
    that leaves while rank 0 still validates can abort in interpreter shutdown
    (``terminate called without an active exception``).
  - ``BaseModel.model_to_device``: DistributedDataParallel without
    ``device_ids`` on CPU. Why: 1.4.2 passes ``torch.cuda.current_device()``.
  - ``build_network`` (in ``basicsr.archs`` and the model modules that import
    it): a network option the arch does not take is named, with the options
    it accepts. Why: 1.4.2 raises a bare ``TypeError``.
  - ``BaseModel.load_network``: read weights through rssr's one loader
    (:mod:`rssr_utils.weights`: ``weights_only``, safetensors, ``param_key``
    errors that list the file's entries). Why: 1.4.2 unpickles anything and
    falls back from ``params_ema`` to ``params`` without saying so in errors.
  - ``parse_options`` (in ``basicsr.utils.options``, ``basicsr.train`` and
    ``basicsr.test``), ``ordered_yaml`` and ``_postprocess_yml_value``
    (:func:`patch_option_parsing`, :func:`.entry._patch_entry_points`): option files
    are read with PyYAML's safe loader and ``--force_yml`` values as YAML, the
    options are checked at start-up (:mod:`rssr_utils.options`); BasicSR's
    ``train.py``/``test.py`` run as scripts (``python -m basicsr.train``,
    ``python basicsr/train.py``) get every patch made to
    ``basicsr.train``/``basicsr.test``, and an installed BasicSR writes under
    the current directory instead of site-packages. Why: 1.4.2 uses the unsafe
    loader (a file can run code), applies ``--force_yml`` with
    ``exec``/``eval``, reports bad options late and without their key; a script
    is a fresh copy of the module in ``__main__`` that patches do not reach, and
    1.4.2 puts ``experiments/`` next to its own package folder.
  - :func:`patch_checkpoint_saving`: ``BaseModel.save_network`` and
    ``save_training_state`` write to ``<name>.tmp``, fsync and rename; states
    also hold the random states and data position. Why: 1.4.2 writes in place
    (kill -9 leaves partial files under final names) and saves no RNG state.
  - :func:`patch_exact_resume`: ``CPUPrefetcher``/``CUDAPrefetcher`` ``reset``
    and ``next`` track the data position and, on resume, move the first epoch
    to the saved batch with the saved random states; ``BaseModel.validation``
    (:func:`.entry._validation`) leaves the random states as it found them. Why: 1.4.2 restarts the saved
    epoch from its first batch with fresh random states, and a validation
    shifts the training's random numbers (its data loader draws a seed).
  - ``BaseModel.validation`` (:func:`.entry._patch_entry_points`) also runs on the
    networks without their DistributedDataParallel wrapper. Why: 1.4.2
    validates on rank 0 only, and a wrapped forward broadcasts buffers (FAT has
    some) to ranks that are not validating; at the last iteration they have
    left, and training crashes.

  - :func:`.archs.patch_band_means`: EDSR's and RCAN's ``rgb_mean`` holds one
    value per input band. Why: 1.4.2 shapes it (1, 3, 1, 1), so a 4-band
    EDSR or RCAN fails.

``rssr_autoload`` (installed as ``rssr-autoload.pth``) runs
:func:`rssr_compat.install` and :func:`import_registries` (which applies
:func:`patch_basicsr`) the first time ``basicsr`` is imported, so BasicSR's own
entry points get them. The patches live in :mod:`.training` and :mod:`.entry`;
the machinery they call in :mod:`rssr_utils`.
"""

import importlib

import rssr_compat  # noqa: F401  (must precede the first basicsr import)

from rssr_utils.weights import build_network

from . import archs, entry, training

PACKAGES = ('rssr_arch', 'rssr_loss', 'rssr_data', 'rssr_metrics', 'rssr_model')
# Model modules of BasicSR 1.4.2 that bind `build_network` at import.
_BUILD_NETWORK_USERS = (
    'basicsr.archs',
    'basicsr.models.sr_model',
    'basicsr.models.srgan_model',
    'basicsr.models.esrgan_model',
    'basicsr.models.video_gan_model',
)


def import_registries():
    """Import rssr's packages (they register their classes) and apply :func:`patch_basicsr`."""
    for package in PACKAGES:
        importlib.import_module(package)
    patch_basicsr()


def patch_basicsr():
    """Install the changes listed in the module docstring into BasicSR (idempotent)."""
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    entry._patch_entry_points()  # first: it records basicsr.train / basicsr.test before the patches below
    for name in _BUILD_NETWORK_USERS:
        module = importlib.import_module(name)
        if hasattr(module, 'build_network'):
            module.build_network = build_network
    basicsr.train.load_resume_state = training._load_resume_state
    basicsr.utils.options.init_dist = training._init_dist
    BaseModel.model_to_device = training._model_to_device
    BaseModel.load_network = training._load_network
    entry.patch_option_parsing()
    training.patch_checkpoint_saving()
    training.patch_exact_resume()
    archs.patch_band_means()
