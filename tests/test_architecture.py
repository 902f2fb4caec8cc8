"""The layout of docs/architecture.md: each room imports only the rooms below it (lazy imports included)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Bottom to top: a room may import the rooms before it in this list, never one after it.
ROOMS = (
    'rssr_compat',  # the torchvision alias, imported first by every package
    'rssr_arch',  # networks, converters, export helpers
    'rssr_utils',  # machinery: options, states, weights + build_network, image jobs and I/O, LMDB, tiling, memory
    'rssr_data',  # datasets, degradations, prepare, demo data
    'rssr_metrics',  # remote-sensing metrics (METRIC_REGISTRY) and the no-reference LR consistency
    'rssr_loss',  # losses
    'rssr_model',  # models
    'rssr_patches',  # every change rssr makes to BasicSR
    'rssr_apps',  # the commands
    'rssr_autoload',  # the start-up hook (.pth): applies rssr_patches when BasicSR is imported
)


def _files(room):
    module = REPO / f'{room}.py'
    return [module] if module.is_file() else sorted((REPO / room).rglob('*.py'))


def _imported_rooms(path):
    """{room: first line} of the rssr rooms ``path`` imports, at any depth of the file."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside their room
        for name in names:
            top = name.split('.')[0]
            if top in ROOMS:
                found.setdefault(top, node.lineno)
    return found


def test_every_import_points_down():
    upward = []
    for rank, room in enumerate(ROOMS):
        files = _files(room)
        assert files, f'{room} is missing: update ROOMS and docs/architecture.md'
        for path in files:
            for other, line in _imported_rooms(path).items():
                if ROOMS.index(other) > rank:
                    upward.append(f'{path.relative_to(REPO)}:{line} imports {other}, a room above {room}')
    assert not upward, '\n'.join(upward)


def test_every_package_is_a_room():
    packages = {p.parent.name for p in REPO.glob('*/__init__.py')} | {p.stem for p in REPO.glob('rssr*.py')}
    assert packages - {'tests'} <= set(ROOMS), sorted(packages - set(ROOMS))
