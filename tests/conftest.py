import os
from pathlib import Path

import rssr_compat  # noqa: F401  (before any basicsr import in the tests)

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get('RSSR_SHARED', REPO_ROOT.parent / 'shared'))


@pytest.fixture(scope='session')
def shared_dir():
    """The workspace's ``../shared`` folder (parity vectors, samples); skip when absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f'{SHARED_DIR} is absent (parity vectors and samples live there)')
    return SHARED_DIR


@pytest.fixture(scope='session')
def parity_dir(shared_dir):
    path = shared_dir / 'parity'
    if not path.is_dir():
        pytest.skip(f'{path} is absent')
    return path


@pytest.fixture(scope='session')
def samples_dir(shared_dir):
    """Real RSSR25 aerial images: ``rssr25_sample/{train/HR,train/LR,test/LR}``."""
    path = shared_dir / 'samples' / 'rssr25_sample'
    if not path.is_dir():
        pytest.skip(f'{path} is absent')
    return path
