"""The plugin's foundation: imports with current torchvision, registries, entry points, resume, DDP."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rssr_utils.states import read_training_state
from tests.helpers.options import SUBPROCESS_ENV, dump, free_port, state_iters, tiny_train_options

REPO = Path(__file__).resolve().parents[1]


def run(args, cwd, **kwargs):
    proc = subprocess.run(args, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def test_fresh_interpreter_imports_and_registers():
    code = textwrap.dedent("""
        import sys, inspect
        import rssr_arch, rssr_loss, rssr_data, rssr_model
        from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
        import basicsr.data.degradations  # the module that needs the torchvision alias
        assert 'torchvision.transforms.functional_tensor' in sys.modules
        for package, registry in ((rssr_arch, ARCH_REGISTRY), (rssr_loss, LOSS_REGISTRY),
                                  (rssr_data, DATASET_REGISTRY), (rssr_model, MODEL_REGISTRY)):
            for module in package._modules:
                ours = [name for name, obj in vars(module).items()
                        if inspect.isclass(obj) and obj.__module__ == module.__name__ and name in registry]
                assert ours, f'{module.__name__} registers nothing in {registry._name}'
                print(module.__name__, ours)
        assert MODEL_REGISTRY.get('RSSRModel') is rssr_model.rssr_model.RSSRModel
    """)
    out = run([sys.executable, '-c', code], cwd='/')
    assert 'rssr_model.rssr_model' in out


def test_compat_alias_is_idempotent_and_public():
    import rssr_compat

    import torchvision.transforms.functional as F

    rssr_compat.install()
    legacy = sys.modules['torchvision.transforms.functional_tensor']
    assert legacy.rgb_to_grayscale is F.rgb_to_grayscale or hasattr(legacy, 'rgb_to_grayscale')


def _adam_steps(state):
    return {int(s['step']) for opt in state['optimizers'] for s in opt['state'].values()}


@pytest.mark.parametrize('how', ['auto_resume', 'resume_state'])
def test_train_then_resume_on_cpu(tmp_path, how):
    opt = dump(tiny_train_options(tmp_path / 'data', name='resume', total_iter=4), tmp_path / 'tiny.yml')
    run([sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', opt], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'resume'
    assert state_iters(exp) == [2, 4]
    first = read_training_state(exp / 'training_states' / '4.state')
    assert first['iter'] == 4 and _adam_steps(first) == {4}

    # argparse keeps only the last --force_yml, so every override goes into one.
    overrides = ['train:total_iter=6']
    if how == 'auto_resume':
        flags = ['--auto_resume']
    else:
        flags, overrides = [], overrides + [f'path:resume_state={exp / "training_states" / "4.state"}']
    out = run(
        [sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', opt, *flags, '--force_yml', *overrides],
        cwd=tmp_path,
    )
    assert 'Resuming training from epoch' in out and 'iter: 4.' in out
    final = read_training_state(exp / 'training_states' / '6.state')
    # Adam counted 6 steps in total: its state (and step count) came back from 4.state.
    assert final['iter'] == 6 and _adam_steps(final) == {6}
    assert not any(p.name.startswith('resume_archived') for p in (tmp_path / 'experiments').iterdir())


DDP_PROBE = textwrap.dedent("""
    # Runs the real entry point, then saves each rank's final weights for comparison.
    import os, sys, torch
    import rssr_apps.cli, basicsr.train
    built = []
    build_model = basicsr.train.build_model

    def build_and_keep(opt):
        model = build_model(opt)
        net = model.get_bare_model(model.net_g)
        built.append((model, {k: v.clone() for k, v in net.state_dict().items()}))
        return model

    basicsr.train.build_model = build_and_keep
    rssr_apps.cli.train()
    model, initial = built[0]
    name = f'rank{torch.distributed.get_rank()}of{torch.distributed.get_world_size()}'
    final = model.get_bare_model(model.net_g).state_dict()
    torch.save({'initial': initial, 'final': final}, os.path.join(os.environ['PROBE_OUT'], name + '.pth'))
""")


def test_distributed_training_with_gloo_on_cpu(tmp_path):
    opt = dump(tiny_train_options(tmp_path / 'data', name='ddp', total_iter=3, save_freq=3), tmp_path / 'ddp.yml')
    probe = tmp_path / 'probe.py'
    probe.write_text(DDP_PROBE)
    env = dict(SUBPROCESS_ENV, PROBE_OUT=str(tmp_path))
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            '--nnodes=1',
            f'--master_port={free_port()}',
            str(probe),
            '-opt',
            opt,
            '--launcher',
            'pytorch',
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{r}of2.pth') for r in range(2)]
    saved = torch.load(tmp_path / 'experiments' / 'ddp' / 'models' / 'net_g_3.pth')['params']
    assert ranks[0]['final'].keys() == saved.keys()
    for key, value in ranks[0]['final'].items():
        assert torch.equal(value, ranks[1]['final'][key]), key
        assert torch.equal(value, saved[key]), key
    # Training moved the weights, so equal finals are not two untouched copies of one init.
    assert any(not torch.equal(ranks[0]['initial'][k], v) for k, v in ranks[0]['final'].items())


def test_console_scripts_are_installed():
    bindir = Path(sys.executable).parent
    for name in ('rssr-train', 'rssr-test', 'rssr-demo'):
        assert (bindir / name).is_file(), f'{name} missing: reinstall with pip install -e .'
    out = run([str(bindir / 'rssr-train'), '--help'], cwd='/')
    assert '--auto_resume' in out and '--launcher' in out


def test_unknown_network_option_names_the_key(tmp_path):
    opt = tiny_train_options(tmp_path / 'data', name='typo')
    opt['network_g']['num_blok'] = 2
    path = dump(opt, tmp_path / 'typo.yml')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'train.py'), '-opt', path],
        cwd=tmp_path,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    # Named at start-up (rssr_utils.options), before any folder or data loader is made.
    assert 'network_g.num_blok: MSRResNet takes no such option' in proc.stderr and "'num_block'" in proc.stderr
    assert not (tmp_path / 'experiments').exists()
