"""Speed and peak memory of rssr's TSFNet / FAT / extremum-variance loss against the official code.

Usage:
  python scripts/bench_official.py --arch TSFNet --official /path/to/TSFNet_RSISR
  python scripts/bench_official.py --arch FAT --official /path/to/FAT
  python scripts/bench_official.py --arch loss --official /path/to/FAT

Each (implementation, mode) runs in a fresh process with the same weights (the
official model's initialisation, converted) and the same input: the median of
``--runs`` timed runs after a warm-up (best of ``--repeats`` processes per
implementation, alternating official/ours), and the peak resident-memory growth
(VmHWM, reset before the run) of one run over the weights and input already
resident (measured in its own process). Modes: ``forward`` (eval, no grad) and ``train`` (forward + L1 +
backward). Ratios are ours / official; below 1 is better. The official code
is read from a local clone (``--official`` or $RSSR_OFFICIAL_TSFNET /
$RSSR_OFFICIAL_FAT); it needs ``einops`` (TSFNet) or ``timm`` (FAT). Without
it the script says so and exits 0.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types

import torch

from rssr_utils.guards import positive_int
from rssr_utils.memory import MEASURE_ENV, peak_growth_kib

DEFAULTS = {  # LR input (the official TSFNet runs only at HR 256; FAT needs multiples of 12)
    'TSFNet': dict(env='RSSR_OFFICIAL_TSFNET', shape=(1, 3, 32, 32)),
    'FAT': dict(env='RSSR_OFFICIAL_FAT', shape=(1, 3, 48, 48)),
    'loss': dict(env='RSSR_OFFICIAL_FAT', shape=(2, 3, 480, 480)),
}


def import_official(arch, root):
    """Import the official module from a clone without running its package __init__ (it needs torchsummary)."""
    if arch == 'TSFNet':
        package = types.ModuleType('model')
        package.__path__ = [os.path.join(root, 'model')]
        sys.modules['model'] = package
        from model import tsfnet

        return tsfnet
    sys.path.insert(0, root)
    if arch == 'FAT':
        from models import FAT

        return FAT
    import train

    return train


def build(arch, impl, root, scale):
    """Return (callable, input) with the official initialisation shared by both implementations."""
    import rssr_arch
    import rssr_loss  # noqa: F401

    torch.manual_seed(0)
    shape = DEFAULTS[arch]['shape']
    x = torch.rand(shape)
    official = import_official(arch, root)
    if arch == 'loss':
        from rssr_loss.extremum_variance_loss import ExtremumVarianceLoss

        loss = official.VarianceimpFeatureLoss() if impl == 'official' else ExtremumVarianceLoss(value_range=(-1, 1))
        return loss, x * 2 - 1
    if arch == 'TSFNet':
        theirs = official.TSFNet(scale=scale, base_num_every_group=2, num_features=64)
    else:
        theirs = official.FAT()
        x = x * 2 - 1 if impl == 'official' else x
    if impl == 'official':
        return theirs, x
    from basicsr.utils.registry import ARCH_REGISTRY

    ours = ARCH_REGISTRY.get(arch)(upscale=scale)
    ours.load_state_dict(rssr_arch.convert_official_state_dict(arch, theirs.state_dict()), strict=True)
    del theirs
    return ours, x


def child(args):
    fn, x = build(args.arch, args.impl, args.official, args.scale)
    target = torch.rand_like(x) * 2 - 1 if args.arch == 'loss' else None

    def run():
        if args.arch == 'loss':
            pred = x.clone().requires_grad_(True)
            fn(pred, target).backward()
        elif args.mode == 'forward':
            fn.eval()
            with torch.no_grad():
                fn(x)
        else:
            fn.train()
            outputs = fn(x)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            sum(o.abs().mean() for o in outputs).backward()
            fn.zero_grad(set_to_none=True)

    run()  # warm-up
    if args.measure == 'memory':
        return print(json.dumps({'peak_mib': peak_growth_kib(run) / 1024}))
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(json.dumps({'seconds': statistics.median(times)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True, choices=sorted(DEFAULTS))
    parser.add_argument('--official', help='local clone of the official repository')
    parser.add_argument('--scale', type=positive_int, default=None, help='upscale (TSFNet: 8, FAT: 4)')
    parser.add_argument('--runs', type=positive_int, default=3, help='timed runs per process (their median is kept)')
    parser.add_argument(
        '--repeats', type=positive_int, default=3, help='timed processes per implementation (best is kept)'
    )
    parser.add_argument('--impl', choices=['ours', 'official'], help=argparse.SUPPRESS)
    parser.add_argument('--mode', choices=['forward', 'train'], help=argparse.SUPPRESS)
    parser.add_argument('--measure', choices=['time', 'memory'], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.official = args.official or os.environ.get(DEFAULTS[args.arch]['env'])
    args.scale = args.scale or (8 if args.arch == 'TSFNet' else 4)
    if args.impl:
        return child(args)
    if not args.official or not os.path.isdir(args.official):
        print(f'No official clone given (--official or ${DEFAULTS[args.arch]["env"]}); nothing to compare. Skipped.')
        return
    envs = {'time': dict(os.environ), 'memory': dict(os.environ, **MEASURE_ENV)}  # see rssr_utils.memory
    modes = ['train'] if args.arch == 'loss' else ['forward', 'train']
    print(
        f'{args.arch}: input {tuple(DEFAULTS[args.arch]["shape"])}, x{args.scale}, {torch.get_num_threads()} '
        f'threads, best of {args.repeats} alternating processes, each the median of {args.runs} runs after 1 '
        'warm-up'
    )
    print(
        f'{"mode":<8} {"official s":>11} {"ours s":>9} {"ratio":>6} {"official MiB":>13} {"ours MiB":>9} {"ratio":>6}'
    )
    for mode in modes:
        result = {'official': {}, 'ours': {}}
        # Timed processes alternate official/ours --repeats times and each keeps its best median, so that
        # a slow spell of the machine does not land on one side only.
        runs = [('time', impl) for _ in range(args.repeats) for impl in ('official', 'ours')]
        for measure, impl in runs + [('memory', 'official'), ('memory', 'ours')]:
            cmd = [
                sys.executable,
                __file__,
                '--arch',
                args.arch,
                '--official',
                args.official,
                '--scale',
                str(args.scale),
                '--runs',
                str(args.runs),
                '--impl',
                impl,
                '--mode',
                mode,
                '--measure',
                measure,
            ]
            proc = subprocess.run(cmd, env=envs[measure], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f'{impl} {mode} failed:\n{proc.stderr[-2000:]}')
            for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                result[impl][key] = min(value, result[impl].get(key, value))
        o, u = result['official'], result['ours']
        print(
            f'{mode:<8} {o["seconds"]:>11.3f} {u["seconds"]:>9.3f} {u["seconds"] / o["seconds"]:>6.2f} '
            f'{o["peak_mib"]:>13.1f} {u["peak_mib"]:>9.1f} {u["peak_mib"] / max(o["peak_mib"], 1e-9):>6.2f}'
        )


if __name__ == '__main__':
    main()
