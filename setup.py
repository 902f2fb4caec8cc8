"""rssr: a BasicSR plugin for large-factor remote-sensing image super-resolution."""

import os

from setuptools import Command, find_packages, setup
from setuptools.command.build import build

AUTOLOAD_PTH = 'rssr-autoload.pth'  # one line, `import rssr_autoload`: the start-up hook (see rssr_autoload.py)
# Top-level packages, lowest room first (docs/architecture.md).
PACKAGES = [
    'rssr_arch',
    'rssr_utils',
    'rssr_data',
    'rssr_metrics',
    'rssr_loss',
    'rssr_model',
    'rssr_patches',
    'rssr_apps',
]
EXPORT = ['onnx', 'onnxruntime', 'onnxscript']  # the ONNX export and onnxruntime inference


class build_autoload(Command):
    """Put ``rssr-autoload.pth`` at the top of the wheel, i.e. of site-packages, for wheels and editable installs.

    A wheel's top level is ``build_lib``. An editable wheel (PEP 660) packs only its own finder and the folder
    it gives the ``install`` command as ``install_lib``, so the file goes there. (``data_files`` cannot do it:
    setuptools' editable wheels leave them out.)
    """

    description = 'copy rssr-autoload.pth to the top of the wheel'
    user_options = []

    def initialize_options(self):
        self.build_lib = None
        self.editable_mode = False

    def finalize_options(self):
        self.set_undefined_options('build_py', ('build_lib', 'build_lib'))

    def _target(self):
        folder = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        return os.path.join(folder, AUTOLOAD_PTH)

    def run(self):
        self.mkpath(os.path.dirname(self._target()))
        self.copy_file(AUTOLOAD_PTH, self._target())

    def get_source_files(self):
        return [AUTOLOAD_PTH]

    def get_outputs(self):
        return [] if self.editable_mode else [self._target()]


class build_with_autoload(build):
    sub_commands = build.sub_commands + [('build_autoload', None)]


setup(
    name='rssr',
    version='0.1.0',
    description='TSFNet and FAT for remote-sensing super-resolution, as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=[*PACKAGES, 'rssr_utils.*', 'rssr_apps.*']),
    py_modules=['rssr_compat', 'rssr_autoload'],
    cmdclass={'build': build_with_autoload, 'build_autoload': build_autoload},
    install_requires=[
        'basicsr>=1.4.2',
        'torch>=2.6',  # torch.load defaults to weights_only=True; rssr never turns it off
        'torchvision',
        'numpy',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'tqdm',
        'scikit-image',
        'matplotlib',
        'safetensors',
        'msgspec>=0.18',  # the option-file schema (rssr_utils.schema)
        'torchmetrics',  # SAM, ERGAS, SSIM of rssr_metrics
        'scipy',
    ],
    extras_require={
        # rasterio: the GeoTIFF tests; bm3d: the denoising tests; onnx*: the export tests; ruff: the lint CI runs
        # (pinned: its formatter's style changes between releases)
        'test': ['pytest', 'rasterio', 'bm3d', 'sewar', *EXPORT, 'spandrel', 'ruff==0.17.6'],
        'geo': ['rasterio'],
        'denoise': ['bm3d'],  # --method bm3d of denoise_hr.py / prepare_dataset.py
        'export': EXPORT,  # rssr-export --formats onnx, rssr-infer --onnx
        'spandrel': ['spandrel'],  # rssr_arch.spandrel.install(): chaiNNer's loader reads rssr's files
    },
    entry_points={
        'console_scripts': [
            'rssr-train=rssr_apps.cli:train',
            'rssr-test=rssr_apps.cli:test',
            'rssr-infer=rssr_apps.cli:infer',
            'rssr-bench=rssr_apps.cli:bench',
            'rssr-demo=rssr_apps.cli:demo',
            'rssr-degrade=rssr_apps.cli:degrade',
            'rssr-denoise=rssr_apps.cli:denoise',
            'rssr-lam=rssr_apps.cli:lam',
            'rssr-export=rssr_apps.cli:export',
        ],
    },
)
