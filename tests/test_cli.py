"""The console scripts: one table in rssr_apps.cli, setup.py's entry points, and each tool's own name in usage."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from rssr_apps import cli
from tests.helpers.options import SUBPROCESS_ENV

REPO = Path(__file__).resolve().parents[1]


def _console_scripts():
    """{command: 'module:function'} from setup.py's entry_points, read with ast (setup.py is not run)."""
    for node in ast.walk(ast.parse((REPO / 'setup.py').read_text())):
        if isinstance(node, ast.Dict) and any(getattr(k, 'value', None) == 'console_scripts' for k in node.keys):
            entries = ast.literal_eval(node.values[[k.value for k in node.keys].index('console_scripts')])
            return dict(entry.split('=') for entry in entries)
    raise AssertionError('setup.py has no console_scripts')


def test_every_console_script_is_a_function_of_the_cli_table():
    scripts = _console_scripts()
    assert set(cli.APPS) <= set(scripts)
    for command, target in scripts.items():
        module, function = target.split(':')
        assert module == 'rssr_apps.cli' and callable(getattr(cli, function)), command
    for command, (function, module, _) in cli.APPS.items():
        assert scripts[command] == f'rssr_apps.cli:{function}'
        assert importlib.util.find_spec(module) is not None, module
        assert getattr(cli, function).__name__ == function and command in getattr(cli, function).__doc__


@pytest.mark.parametrize('function', [f for f, _, _ in cli.APPS.values()])
def test_usage_names_the_program_that_was_run(function, monkeypatch, capsys):
    script = {'bench': 'benchmark.py', 'denoise': 'denoise_hr.py'}.get(function, f'{function}.py')
    assert (REPO / 'scripts' / script).is_file()
    monkeypatch.setattr(sys, 'argv', [str(REPO / 'scripts' / script)])
    with pytest.raises(SystemExit) as exit_:
        getattr(cli, function)(['--help'])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f'usage: {script}')


def test_script_help_in_a_fresh_interpreter():
    proc = subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'infer.py'), '--help'],
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.startswith('usage: infer.py'), proc.stdout[:300] + proc.stderr[-2000:]
