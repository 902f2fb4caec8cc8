"""Local attribution maps (LAM, Gu & Dong, CVPR 2021) for any registered arch: ``rssr-lam`` / ``scripts/lam.py``.

:mod:`.core` computes the attribution (path-integrated gradients along a
Gaussian-blur path, batched) and the diffusion index, :mod:`.render` the
pictures, :mod:`.cli` the command (models, image, window, outputs).
"""

from .cli import main, run_lam
from .core import Attribution, blur_path, diffusion_index, gini, path_attribution, window_gradient_objective

__all__ = [
    'Attribution',
    'blur_path',
    'diffusion_index',
    'gini',
    'main',
    'path_attribution',
    'run_lam',
    'window_gradient_objective',
]
