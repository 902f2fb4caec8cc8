"""Start-up cost of rssr's hook: ``python -c pass`` with and without ``rssr-autoload.pth``.

Usage: python scripts/bench_startup.py [--runs 300]

Builds two throwaway venvs (``python -m venv --without-pip``) laid out as a wheel install leaves
site-packages, which differ in one file: both hold ``rssr_autoload.py`` (compiled, as pip does), B also
``rssr-autoload.pth``.
Runs ``python -c pass`` alternately in A and B (the machine may be shared and noisy) and prints each side's
median and minimum wall time, the median of the paired differences B - A and the ratio of the medians.
Also prints ``-X importtime``'s median figure for ``rssr_autoload`` and what the finder adds to every later
import.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import timeit

from rssr_utils.guards import positive_int

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_venv(folder, hook):
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', folder], check=True)
    python = os.path.join(folder, 'bin', 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'], check=True, capture_output=True
    )
    site = site.stdout.decode().strip()
    for name in ('rssr_autoload.py', 'rssr-autoload.pth') if hook else ('rssr_autoload.py',):
        shutil.copy(os.path.join(REPO, name), site)
    # pip compiles what it installs; without this, PYTHONDONTWRITEBYTECODE=1 would recompile the module every run.
    subprocess.run([python, '-m', 'compileall', '-q', site], check=True)
    return python


def start_time(python, env):
    start = time.perf_counter()
    subprocess.run([python, '-c', 'pass'], check=True, env=env)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=positive_int, default=300, help='runs of each side, alternating')
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'RSSR_NO_AUTOLOAD')}
    with tempfile.TemporaryDirectory() as tmp:
        pythons = {name: make_venv(os.path.join(tmp, name), hook) for name, hook in (('A', False), ('B', True))}
        probe = [pythons['B'], '-c', 'import sys; print(type(sys.meta_path[0]).__name__)']
        assert subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip() == 'BasicSRHook'
        times = {name: [] for name in pythons}
        for _ in range(3):  # warm the file cache and .pyc files
            for python in pythons.values():
                start_time(python, env)
        for _ in range(args.runs):
            for name, python in pythons.items():
                times[name].append(start_time(python, env))
        importtimes = [
            subprocess.run([pythons['B'], '-X', 'importtime', '-c', 'pass'], capture_output=True, text=True, env=env)
            for _ in range(21)
        ]
    self_us = statistics.median(
        int(line.split(':', 1)[1].split('|')[0])
        for proc in importtimes
        for line in proc.stderr.splitlines()
        if line.rstrip().endswith('rssr_autoload')
    )
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    paired = statistics.median(b - a for a, b in zip(times['A'], times['B'])) * 1e3
    for name, label in (('A', 'without the hook'), ('B', 'with the hook   ')):
        print(f'{name} {label}: median {medians[name]:.2f} ms, min {min(times[name]) * 1e3:.2f} ms ({args.runs} runs)')
    print(
        f'B - A: median of paired differences {paired:+.2f} ms; ratio of medians B/A {medians["B"] / medians["A"]:.3f}'
    )
    print(f'-X importtime, import of rssr_autoload: median {self_us:.0f} us (21 runs)')

    sys.path.insert(0, REPO)
    from rssr_autoload import BasicSRHook

    hook, number = BasicSRHook(), 200000
    per_call = timeit.timeit(lambda: hook.find_spec('json'), number=number) / number
    print(f'every later import of another module: + {per_call * 1e9:.0f} ns (one BasicSRHook.find_spec call)')
    print(f'python {sys.version.split()[0]}, {sysconfig.get_platform()}')


if __name__ == '__main__':
    main()
