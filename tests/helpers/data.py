"""Generated image folders and script runners shared by the data tests."""

import importlib.util
import io
import struct
import subprocess
import sys
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import rssr_compat  # noqa: F401  (before basicsr)

import cv2
import numpy as np
from basicsr.data import build_dataset

REPO = Path(__file__).resolve().parents[2]


def run_script(name, *args):
    return subprocess.run(
        [sys.executable, str(REPO / 'scripts' / name), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def call_main(main, *args):
    """Run a command's ``main(argv)`` in this process; returns what ``run_script`` does.

    ``sys.exit('message')`` prints the message and gives 1, as the interpreter does; an int returned is the code.
    """
    out, err, code = io.StringIO(), io.StringIO(), 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            result = main([str(a) for a in args])
            code = result if isinstance(result, int) else 0
        except SystemExit as done:
            code = 1 if isinstance(done.code, str) else done.code or 0
            if isinstance(done.code, str):
                print(done.code, file=sys.stderr)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def script_main(name):
    """The ``main`` of ``scripts/<name>``, loaded as a module (no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f'script_{name[:-3]}', REPO / 'scripts' / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pickled by name for the script's worker processes (forked)
    spec.loader.exec_module(module)
    return module.main


def call_script(name, *args):
    """Run ``scripts/<name>``'s ``main`` in this process; returns what ``run_script`` does."""
    return call_main(script_main(name), *args)


def make_scenes(root, classes=('forest', 'river'), per_class=4, size=(36, 44), seed=0, dtype=np.uint8):
    """Class folders of smooth random RGB images (.png), like an extracted download."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = cv2.GaussianBlur(rng.random(size + (3,)), (0, 0), 2) * peak
            cv2.imwrite(str(root / cls / f'{cls}{i:02d}.png'), img.astype(dtype))
    return root


def dataset(**opt):
    opt.setdefault('type', 'RSPairedDataset')
    opt.setdefault('name', 't')
    opt.setdefault('phase', 'val')
    opt.setdefault('io_backend', {'type': 'disk'})
    return build_dataset(opt)


def basicsr_lmdb_pairs(hr_db, lr_db, scale=4):
    """BasicSR's own ``PairedImageDataset`` over two LMDBs (what a user's BasicSR option file would build)."""
    return dataset(
        type='PairedImageDataset',
        name='b',
        scale=scale,
        dataroot_gt=str(hr_db),
        dataroot_lq=str(lr_db),
        io_backend={'type': 'lmdb'},
        filename_tmpl='{}',
    )


def png_bomb(width=100000, height=100000):
    """A tiny valid-looking PNG whose header declares ``width`` x ``height`` RGB pixels (one byte of data)."""

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\x00')) + chunk(b'IEND', b'')
