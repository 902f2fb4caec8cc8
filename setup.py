"""rssr: a BasicSR plugin for large-factor remote-sensing image super-resolution."""

from setuptools import find_packages, setup

setup(
    name='rssr',
    version='0.1.0',
    description='TSFNet and FAT for remote-sensing super-resolution, as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['rssr_arch', 'rssr_loss', 'rssr_data', 'rssr_model', 'rssr_tools', 'rssr_tools.*']),
    py_modules=['rssr_compat'],
    install_requires=[
        'basicsr>=1.4.2',
        'torch',
        'torchvision',
        'numpy',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'tqdm',
        'scikit-image',
        'matplotlib',
        'safetensors',
    ],
    extras_require={
        'test': ['pytest', 'rasterio', 'onnx', 'onnxruntime', 'onnxscript'],  # rasterio: GeoTIFF tests; onnx*: export
        'geo': ['rasterio'],
        'export': ['onnx', 'onnxruntime', 'onnxscript'],  # rssr-export --formats onnx, rssr-infer --onnx
    },
    entry_points={
        'console_scripts': [
            'rssr-train=rssr_tools.cli:train',
            'rssr-test=rssr_tools.cli:test',
            'rssr-infer=rssr_tools.cli:infer',
            'rssr-bench=rssr_tools.cli:bench',
            'rssr-demo=rssr_tools.cli:demo',
            'rssr-export=rssr_tools.cli:export',
        ],
    },
)
