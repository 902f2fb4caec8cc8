"""Checkpoints and training states: no code from files, no partial files after kill -9, exact resume.

Training runs are real ``scripts/train.py`` subprocesses on a tiny MSRResNet
(tests/helpers/options.py): 6 image pairs, batch 2, so an epoch is 3
iterations and the saves at 2 and 4 fall inside epochs.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rssr_utils.states import StateError, find_resume_state, read_training_state, save_atomic
from rssr_utils.weights import WeightsError, read_weights_file
from tests.helpers.options import SUBPROCESS_ENV, dump, tiny_train_options

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / 'scripts' / 'train.py')]


class Payload:
    """Unpickling it creates ``path``: what a hostile checkpoint would do (run code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def run(args, cwd, check=True, env=None):
    proc = subprocess.run(args, cwd=cwd, env=env or SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc


def options(tmp_path, total_iter, workers=0, name='run', **kwargs):
    opt = tiny_train_options(
        tmp_path / 'data', name=name, total_iter=total_iter, num_images=6, workers=workers, **kwargs
    )
    return dump(opt, tmp_path / f'{name}_{total_iter}_{workers}.yml')


def losses(experiment):
    """``{iter: (epoch, l_pix text)}`` from the training logs of one experiment."""
    found = {}
    for log in sorted(experiment.glob('train_*.log')):
        for epoch, it, loss in re.findall(r'epoch:\s*(\d+), iter:\s*(\d+),.*l_pix: (\S+)', log.read_text()):
            found[int(it)] = (int(epoch), loss)
    return found


def differing(a, b, where=''):
    """Paths of the entries of two loaded checkpoints that are not equal (tensors by torch.equal)."""
    if torch.is_tensor(a):
        return [] if torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b) else [where]
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return [where]
        return [d for k in a for d in differing(a[k], b[k], f'{where}.{k}')]
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return [where]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differing(x, y, f'{where}[{i}]')]
    return [] if a == b else [where]


def assert_same_run(reference, resumed, final_iter):
    for name in (f'models/net_g_{final_iter}.pth', 'models/net_g_latest.pth', f'training_states/{final_iter}.state'):
        a = torch.load(reference / name, weights_only=True)
        b = torch.load(resumed / name, weights_only=True)
        assert not differing(a, b), f'{name} differs: {differing(a, b)[:5]}'


# ---------------------------------------------------------------- no code from files


def test_state_and_checkpoint_payloads_are_refused(tmp_path):
    marker = tmp_path / 'pwned'
    state = tmp_path / '4.state'
    torch.save({'epoch': 1, 'iter': 4, 'optimizers': [Payload(marker)], 'schedulers': []}, state)
    with pytest.raises(StateError, match=r'4\.state: asks to load the Python object .*could run code'):
        read_training_state(state)
    weights = tmp_path / 'net_g_4.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'meta': Payload(marker)}, weights)
    with pytest.raises(WeightsError, match=r'net_g_4\.pth: asks to load the Python object'):
        read_weights_file(weights)
    assert not marker.exists()


def test_state_reader_keeps_what_a_scheduler_needs(tmp_path):
    from collections import Counter

    path = tmp_path / '2.state'
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': [{'milestones': Counter([10, 20])}]}, path)
    assert read_training_state(path)['schedulers'][0]['milestones'] == Counter([10, 20])
    path.write_bytes(b'')
    with pytest.raises(StateError, match=r'2\.state: not a readable training state'):
        read_training_state(path)


@pytest.mark.parametrize('how', ['resume_state', 'pretrain_network_g'])
def test_training_refuses_hostile_state_and_weights(tmp_path, how):
    marker = tmp_path / 'pwned'
    hostile = tmp_path / ('hostile.state' if how == 'resume_state' else 'hostile.pth')
    if how == 'resume_state':
        torch.save({'epoch': 0, 'iter': 2, 'optimizers': [Payload(marker)], 'schedulers': []}, hostile)
    else:
        torch.save({'params': Payload(marker)}, hostile)
    opt = options(tmp_path, 4)
    proc = run([*TRAIN, '-opt', opt, '--force_yml', f'path:{how}={hostile}'], tmp_path, check=False)
    assert proc.returncode != 0
    assert str(hostile) in proc.stderr and 'could run code' in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()


def test_official_checkpoint_payload_is_refused_with_the_way_to_convert_it(tmp_path):
    marker = tmp_path / 'pwned'
    hostile = tmp_path / 'official.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'args': Payload(marker)}, hostile)
    convert = [sys.executable, str(REPO / 'scripts' / 'convert_official_checkpoint.py'), '--arch', 'FAT']
    proc = run([*convert, '--input', str(hostile), '--output', str(tmp_path / 'out.pth')], tmp_path, check=False)
    assert proc.returncode != 0 and 'official.pth' in proc.stderr and 'weights_only=False' in proc.stderr
    assert '--trust-pickle' not in proc.stderr and 'convert it once' in proc.stderr
    (tmp_path / 'scenes').mkdir()  # apart from the output folder, which rssr-infer checks first
    scenes, out = str(tmp_path / 'scenes'), str(tmp_path / 'out')
    infer = [sys.executable, str(REPO / 'scripts' / 'infer.py'), scenes, out, '--arch', 'FAT']
    proc = run([*infer, '--weights', str(hostile), '--official', '--device', 'cpu'], tmp_path, check=False)
    assert proc.returncode != 0 and 'official.pth' in proc.stderr and 'convert it once' in proc.stderr
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


# ---------------------------------------------------------------- crash safety


def test_save_atomic_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / 'net_g_2.pth'
    save_atomic({'params': {'w': torch.ones(3)}}, path)

    def failing(obj, f):
        f.write(b'half of a checkpoint')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        save_atomic({'params': {'w': torch.zeros(3)}}, path, failing)
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_2.pth']


def test_find_resume_state_skips_what_does_not_load(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    good = {'epoch': 1, 'iter': 4, 'optimizers': [], 'schedulers': []}
    torch.save(good, states / '4.state')
    torch.save({'params': {}}, models / 'net_g_4.pth')
    torch.save(dict(good, iter=6), states / '6.state')  # its network file is missing
    torch.save(dict(good, iter=8), states / '8.state')
    (models / 'net_g_8.pth').write_bytes(b'PK\x03\x04 truncated')
    (states / '10.state').write_bytes(b'')
    torch.save(dict(good, iter=12, optimizers=[Payload(tmp_path / 'pwned')]), states / '12.state')
    torch.save(good, states / 'backup.state')
    (states / '14.state.tmp').write_bytes(b'partial')
    messages = []
    path, state = find_resume_state(str(states), str(models), log=messages.append)
    assert path == str(states / '4.state') and state['iter'] == 4
    text = '\n'.join(messages)
    for expected in (
        r'ignored \S*backup\.state: not named <iter>\.state',
        r'ignored \S*14\.state\.tmp: an unfinished save',
        r'skipped \S*12\.state: .*could run code',
        r'skipped \S*10\.state: .*not a readable training state',
        r'skipped \S*8\.state: \S*net_g_8\.pth is not a complete checkpoint',
        r'skipped \S*6\.state: \S*net_g_6\.pth is missing',
    ):
        assert re.search(expected, text), (expected, text)
    assert not (tmp_path / 'pwned').exists()


# The training script of the kill tests: BasicSR's entry point with the disk (or each iteration) made slow,
# so that the test can kill -9 it at a known point. `torch.save` writes half the bytes, signals, then stalls.
SLOW_DRIVER = textwrap.dedent("""
    import io, os, sys, time
    import torch
    import rssr_apps.cli

    target, signal_file = os.environ['SLOW_TARGET'], os.environ['SIGNAL_FILE']
    original_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        original_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        name = f if isinstance(f, (str, os.PathLike)) else f.name
        stall = os.path.basename(str(name)).startswith(target)
        out = open(f, 'wb') if isinstance(f, (str, os.PathLike)) else f
        out.write(data[: len(data) // 2])
        out.flush()
        if stall:
            open(signal_file, 'w').close()
            time.sleep(600)
        out.write(data[len(data) // 2 :])
        if out is not f:
            out.close()

    torch.save = slow_save
    if os.environ.get('SLOW_ITER'):
        import rssr_model.rssr_model as m
        step = m.RSSRModel.optimize_parameters

        def slow_step(self, current_iter):
            step(self, current_iter)
            if current_iter == int(os.environ['SLOW_ITER']):
                open(signal_file, 'w').close()
                time.sleep(600)

        m.RSSRModel.optimize_parameters = slow_step
    rssr_apps.cli.train()
""")


def run_until_signal(tmp_path, opt, env):
    """Start the slow driver, wait for its signal file, then kill -9 it."""
    driver = tmp_path / 'slow_driver.py'
    driver.write_text(SLOW_DRIVER)
    signal_file = tmp_path / 'kill_now'
    env = dict(SUBPROCESS_ENV, SIGNAL_FILE=str(signal_file), **env)
    log = tmp_path / 'killed_run.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, str(driver), '-opt', opt], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    deadline = time.time() + 300
    while not signal_file.exists():
        assert proc.poll() is None, f'the training ended before the kill point:\n{log.read_text()[-3000:]}'
        assert time.time() < deadline, 'no kill point reached in 300 s'
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize('target', ['net_g_4.pth', '4.state'])
def test_kill_during_save_leaves_no_partial_file_and_auto_resume_works(tmp_path, target):
    opt = options(tmp_path, 6)
    run_until_signal(tmp_path, opt, {'SLOW_TARGET': target})
    experiment = tmp_path / 'experiments' / 'run'
    # Whatever is under a final name is complete; the interrupted save is only a .tmp.
    for path in list((experiment / 'models').glob('*.pth')):
        read_weights_file(path)
    for path in list((experiment / 'training_states').glob('*.state')):
        read_training_state(path)
    leftovers = sorted(p.name for p in experiment.glob('*/*.tmp'))
    assert leftovers == [target + '.tmp'], leftovers
    assert not (experiment / 'training_states' / '4.state').exists()

    out = run([*TRAIN, '-opt', opt, '--auto_resume'], tmp_path)
    text = out.stdout + out.stderr
    assert re.search(r'auto_resume: resuming from \S*training_states/2\.state', text), text[-3000:]
    assert read_training_state(experiment / 'training_states' / '6.state')['iter'] == 6
    assert not list(experiment.glob('*/*.tmp'))  # the same save, done again, replaced it


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory):
    """An uninterrupted run to iteration 8 (EMA on, so that params_ema must come back too); its experiment folder."""
    root = tmp_path_factory.mktemp('reference')
    run([*TRAIN, '-opt', options(root, 8, ema_decay=0.5)], root)
    return root / 'experiments' / 'run'


def test_kill_between_saves_then_auto_resume_is_exact(tmp_path, reference_run):
    opt = options(tmp_path, 8, ema_decay=0.5)
    run_until_signal(tmp_path, opt, {'SLOW_TARGET': 'no file', 'SLOW_ITER': '5'})  # after 4.state, before 6
    experiment = tmp_path / 'experiments' / 'run'
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']
    run([*TRAIN, '-opt', opt, '--auto_resume'], tmp_path)
    assert_same_run(reference_run, experiment, 8)


# ---------------------------------------------------------------- exact resume


def resume_and_compare(tmp_path, reference, workers):
    """Train to 4, then --auto_resume to 8: the same losses, epochs and tensors as ``reference``, bit for bit."""
    run([*TRAIN, '-opt', options(tmp_path, 4, workers, ema_decay=0.5)], tmp_path)
    experiment = tmp_path / 'experiments' / 'run'
    state = read_training_state(experiment / 'training_states' / '4.state')
    assert state['data']['epoch'] == 1 and state['data']['batches'] == 1  # 4 = 3 of epoch 0 + 1 of epoch 1
    out = run([*TRAIN, '-opt', options(tmp_path, 8, workers, ema_decay=0.5), '--auto_resume'], tmp_path)
    assert 'Resuming training from epoch: 1, iter: 4' in out.stderr + out.stdout
    want, got = losses(reference), losses(experiment)
    assert sorted(want) == list(range(1, 9)) and got == want  # iteration 5's loss and its epoch included
    assert_same_run(reference, experiment, 8)


def test_resume_reproduces_the_uninterrupted_run(tmp_path, reference_run):
    resume_and_compare(tmp_path, reference_run, workers=0)


@pytest.mark.slow
def test_resume_with_loader_workers_reproduces_the_uninterrupted_run(tmp_path):
    """With workers, the resumed epoch's batches already used are loaded again (their augmentation RNG)."""
    reference = tmp_path / 'reference'
    reference.mkdir()
    run([*TRAIN, '-opt', options(tmp_path, 8, 2, ema_decay=0.5)], reference)
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    resume_and_compare(resumed, reference / 'experiments' / 'run', workers=2)


@pytest.mark.slow
def test_resume_from_a_state_without_rng_goes_on_and_says_so(tmp_path):
    """A state written by BasicSR itself (no rng / data entries) still resumes, as BasicSR would."""
    run([*TRAIN, '-opt', options(tmp_path, 2)], tmp_path)
    path = tmp_path / 'experiments' / 'run' / 'training_states' / '2.state'
    state = read_training_state(path)
    torch.save({k: v for k, v in state.items() if k not in ('rng', 'data')}, path)
    out = run([*TRAIN, '-opt', options(tmp_path, 4), '--auto_resume'], tmp_path)
    assert 'holds no random states or data position' in out.stdout + out.stderr
    assert read_training_state(path.with_name('4.state'))['iter'] == 4
