"""The draws and the config of the real-world degradation (:mod:`rssr_data.real_degradations` applies them).

:data:`DEFAULTS` (Real-ESRGAN's ``train_realesrnet_x4plus.yml``) and
:data:`PRESETS`, :func:`load_config` (YAML file, dict or preset, checked by the
option schema), and every random choice of an image drawn up front by
:func:`sample_degradation` on a state :func:`seeded` from :func:`image_seed`
(the run's seed and the image's key), so an image's LR depends on (seed, key)
only. :func:`describe` and :func:`unbatch` turn draws into records and per-image
draws.
"""

import copy
import hashlib
import math
import random
from contextlib import contextmanager

import rssr_compat  # noqa: F401

import numpy as np
import torch
from basicsr.data.degradations import (
    circular_lowpass_kernel,
    random_mixed_kernels,
)

from rssr_utils.options import OptionError, load_yaml
from rssr_utils.schema.degradation import check_degradation

KERNEL_TYPES = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
RESIZE_MODES = ['area', 'bilinear', 'bicubic']

# Real-ESRGAN's published settings (options/train_realesrnet_x4plus.yml and RealESRGANDataset).
DEFAULTS = {
    'usm_sharpen': True,  # degrade the USM-sharpened HR (Real-ESRGAN's gt_usm, the FAT tool does too)
    'resize_modes': RESIZE_MODES,
    'kernel_range': [7, 21],  # odd kernel sizes drawn from this range, padded to blur_kernel_size
    # first order
    'blur_prob': 1.0,
    'blur_kernel_size': 21,
    'kernel_list': KERNEL_TYPES,
    'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    'sinc_prob': 0.1,
    'blur_sigma': [0.2, 3],
    'betag_range': [0.5, 4],
    'betap_range': [1, 2],
    'resize_prob': [0.2, 0.7, 0.1],  # up, down, keep
    'resize_range': [0.15, 1.5],
    'noise_prob': 1.0,
    'gaussian_noise_prob': 0.5,  # else Poisson
    'noise_range': [1, 30],
    'poisson_scale_range': [0.05, 3],
    'gray_noise_prob': 0.4,
    'jpeg_prob': 1.0,
    'jpeg_range': [30, 95],
    # second order
    'second_blur_prob': 0.8,
    'blur_kernel_size2': 21,
    'kernel_list2': KERNEL_TYPES,
    'kernel_prob2': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    'sinc_prob2': 0.1,
    'blur_sigma2': [0.2, 1.5],
    'betag_range2': [0.5, 4],
    'betap_range2': [1, 2],
    'resize_prob2': [0.3, 0.4, 0.3],
    'resize_range2': [0.3, 1.2],
    'noise_prob2': 1.0,
    'gaussian_noise_prob2': 0.5,
    'noise_range2': [1, 25],
    'poisson_scale_range2': [0.05, 2.5],
    'gray_noise_prob2': 0.4,
    'jpeg_prob2': 1.0,
    'jpeg_range2': [30, 95],
    # final
    'final_sinc_prob': 0.8,
    'final_sinc_first_prob': 0.5,  # [resize + sinc] -> JPEG, else JPEG -> [resize + sinc]
    # layout (Real-ESRGAN: none of these)
    'mid_downscale': None,  # after the first order, resize to HR / mid_downscale
    'resize2_power': 1,  # the second random resize factor is applied this many times
    'final_resize_last': False,  # sinc and JPEG at the second-order size, one resize to LR at the end
}

PRESETS = {
    'realesrgan': {},
    # fengyanzi/FAT utils/realdownsample/realesrgan_degration.py: milder noise/JPEG, a fixed halving after the
    # first order, the second factor applied twice (int(H/2*s*s)), sinc and JPEG before the one resize to H/4.
    'fat': {
        'resize_range': [0.7, 1.5],
        'noise_range': [1, 4],
        'poisson_scale_range': [0.05, 1],
        'gray_noise_prob': 0,
        'jpeg_range': [80, 95],
        'resize_prob2': [0.2, 0.6, 0.2],
        'resize_range2': [0.7, 1.2],
        'noise_range2': [1, 2],
        'poisson_scale_range2': [0.05, 0.5],
        'gray_noise_prob2': 0,
        'jpeg_range2': [80, 95],
        'mid_downscale': 2,
        'resize2_power': 2,
        'final_resize_last': True,
    },
}

_PROB_KEYS = [k for k in DEFAULTS if k.endswith('_prob') or k.endswith('_prob2')]
_RANGE_KEYS = [k for k in DEFAULTS if k.endswith('_range') or k.endswith('_range2') or k.startswith('blur_sigma')]


class ConfigError(ValueError):
    """A degradation config that cannot be used, with the key and the fix in the message."""


def load_config(config=None, source='degradation config'):
    """Resolve a degradation config to a full dict of :data:`DEFAULTS`' keys.

    Args:
        config (None | str | dict): None (Real-ESRGAN's settings), a preset name
            (``realesrgan``, ``fat``), a YAML file, or a dict. A file or dict may
            name a base ``preset`` and override any key.
        source (str): Where the config came from, for messages.
    """
    if config is None:
        config = {}
    elif isinstance(config, str):
        if config in PRESETS:
            config = {'preset': config}
        else:
            source = config
            try:
                with open(config, encoding='utf-8') as f:
                    config = load_yaml(f, source) or {}  # safe, aliases bounded
            except OptionError as error:
                raise ConfigError(str(error)) from None
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(
                    f'{config}: cannot be read ({getattr(error, "strerror", None) or error}); give a YAML file or a '
                    f'preset {sorted(PRESETS)}.'
                ) from error
            if not isinstance(config, dict):
                raise ConfigError(f'{source}: must be a mapping of degradation keys.')
    config = dict(config)
    try:  # types, ranges and keys (rssr_utils.schema.degradation)
        check_degradation(config, DEFAULTS, PRESETS, source)
    except OptionError as error:
        raise ConfigError(str(error)) from None
    preset = config.pop('preset', 'realesrgan')
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(copy.deepcopy(PRESETS[preset]))
    cfg.update(config)
    cfg['preset'] = preset
    _check(cfg, source)
    return cfg


def _check(cfg, source):
    for key in _PROB_KEYS:
        values = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        if not all(0 <= v <= 1 for v in values):
            raise ConfigError(f'{source}: {key} = {cfg[key]} must be probabilities in [0, 1].')
    for key in _RANGE_KEYS:
        low, high = cfg[key]
        if low > high:
            raise ConfigError(f'{source}: {key} = {cfg[key]} must be [low, high].')
    for suffix in ('', '2'):
        if len(cfg['kernel_list' + suffix]) != len(cfg['kernel_prob' + suffix]):
            raise ConfigError(f'{source}: kernel_list{suffix} and kernel_prob{suffix} differ in length.')
        if set(cfg['kernel_list' + suffix]) - set(KERNEL_TYPES):
            raise ConfigError(f'{source}: kernel_list{suffix} may name {KERNEL_TYPES}.')
        if len(cfg['resize_prob' + suffix]) != 3:
            raise ConfigError(f'{source}: resize_prob{suffix} needs three probabilities (up, down, keep).')
    low, high = cfg['kernel_range']
    pad = min(cfg['blur_kernel_size'], cfg['blur_kernel_size2'])
    if low % 2 == 0 or high % 2 == 0 or low > high or high > pad or max(cfg['blur_kernel_size'], pad) % 2 == 0:
        raise ConfigError(
            f'{source}: kernel_range {cfg["kernel_range"]} must be odd sizes [low, high] with high <= '
            f'blur_kernel_size(2) (odd).'
        )
    if set(cfg['resize_modes']) - set(RESIZE_MODES) or not cfg['resize_modes']:
        raise ConfigError(f'{source}: resize_modes must be a non-empty subset of {RESIZE_MODES}.')


def image_seed(seed, key):
    """A 32-bit seed from the run's ``seed`` and an image ``key`` (its relative path without extension)."""
    digest = hashlib.sha256(f'{seed}/{key}'.encode()).digest()
    return int.from_bytes(digest[:4], 'little')


@contextmanager
def seeded(seed):
    """Seed Python's and NumPy's global RNGs (what BasicSR's kernel functions use), restore them afterwards."""
    states = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


def _uniform(value_range):
    return float(np.random.uniform(value_range[0], value_range[1]))


def _kernel(cfg, suffix):
    """One blur kernel as RealESRGANDataset draws it: (kernel (K, K) float32, description)."""
    low, high = cfg['kernel_range']
    size = random.choice(range(low, high + 1, 2))
    if np.random.uniform() < cfg['sinc_prob' + suffix]:
        # Real-ESRGAN's cut-off range for kernels of 7 to 21 pixels
        omega_c = float(np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi))
        kernel = circular_lowpass_kernel(omega_c, size, pad_to=False)
        info = {'type': 'sinc', 'size': size, 'omega_c': omega_c}
    else:
        state = random.getstate()  # peek at the type random_mixed_kernels draws first
        kind = random.choices(cfg['kernel_list' + suffix], cfg['kernel_prob' + suffix])[0]
        random.setstate(state)
        sigma = cfg['blur_sigma' + suffix]
        kernel = random_mixed_kernels(
            cfg['kernel_list' + suffix],
            cfg['kernel_prob' + suffix],
            size,
            sigma,
            sigma,
            [-math.pi, math.pi],
            cfg['betag_range' + suffix],
            cfg['betap_range' + suffix],
            noise_range=None,
        )
        info = {'type': kind, 'size': size}
    pad = (cfg['blur_kernel_size' + suffix] - size) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad))).astype(np.float32), info


def pulse(size):
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, size // 2] = 1  # filtering with a pulse changes nothing
    return kernel


def _resize_factor(cfg, suffix):
    kind = random.choices(['up', 'down', 'keep'], cfg['resize_prob' + suffix])[0]
    low, high = cfg['resize_range' + suffix]
    factor = _uniform([1, high]) if kind == 'up' else _uniform([low, 1]) if kind == 'down' else 1.0
    return factor, random.choice(cfg['resize_modes'])


def _noise(cfg, suffix):
    if np.random.uniform() >= cfg['noise_prob' + suffix]:
        return {'type': 'none', 'strength': 0.0, 'gray': False, 'seed': 0}
    gaussian = np.random.uniform() < cfg['gaussian_noise_prob' + suffix]
    strength = _uniform(cfg['noise_range' + suffix] if gaussian else cfg['poisson_scale_range' + suffix])
    gray = bool(np.random.uniform() < cfg['gray_noise_prob' + suffix])
    seed = int(np.random.randint(0, 2**31 - 1))
    return {'type': 'gaussian' if gaussian else 'poisson', 'strength': strength, 'gray': gray, 'seed': seed}


def _jpeg(cfg, suffix):
    return _uniform(cfg['jpeg_range' + suffix]) if np.random.uniform() < cfg['jpeg_prob' + suffix] else 0.0


def sample_degradation(cfg):
    """Draw every random choice of one image's degradation from the global RNGs (see :func:`seeded`).

    Args:
        cfg (dict): A config from :func:`load_config`.

    Returns:
        dict: Flat, collatable draws: ``kernel1``, ``kernel2``, ``sinc_kernel``
        (K x K float32 arrays), ``blur1``/``blur2`` (bool), ``resize1``/``resize2``
        (factor), ``mode1``/``mode2``/``mode_mid``/``mode_final`` (str),
        ``noise{1,2}_{type,strength,gray,seed}``, ``jpeg1``/``jpeg2`` (quality,
        0 = off), ``sinc_first`` (bool), and ``info`` (a JSON-able description of
        the kernels for provenance files).
    """
    kernel1, info1 = _kernel(cfg, '')
    kernel2, info2 = _kernel(cfg, '2')
    draws = {'kernel1': kernel1, 'kernel2': kernel2}
    if np.random.uniform() < cfg['final_sinc_prob']:
        low, high = cfg['kernel_range']
        size = random.choice(range(low, high + 1, 2))
        omega_c = float(np.random.uniform(np.pi / 3, np.pi))
        draws['sinc_kernel'] = circular_lowpass_kernel(omega_c, size, pad_to=cfg['blur_kernel_size']).astype(np.float32)
        info_sinc = {'type': 'sinc', 'size': size, 'omega_c': omega_c}
    else:
        draws['sinc_kernel'] = pulse(cfg['blur_kernel_size'])
        info_sinc = {'type': 'none'}
    draws['blur1'] = bool(np.random.uniform() < cfg['blur_prob'])
    draws['resize1'], draws['mode1'] = _resize_factor(cfg, '')
    draws.update({f'noise1_{k}': v for k, v in _noise(cfg, '').items()})
    draws['jpeg1'] = _jpeg(cfg, '')
    draws['mode_mid'] = random.choice(cfg['resize_modes'])
    draws['blur2'] = bool(np.random.uniform() < cfg['second_blur_prob'])
    draws['resize2'], draws['mode2'] = _resize_factor(cfg, '2')
    draws.update({f'noise2_{k}': v for k, v in _noise(cfg, '2').items()})
    draws['jpeg2'] = _jpeg(cfg, '2')
    draws['sinc_first'] = bool(np.random.uniform() < cfg['final_sinc_first_prob'])
    draws['mode_final'] = random.choice(cfg['resize_modes'])
    for key in ('usm_sharpen', 'resize2_power', 'final_resize_last'):
        draws[key] = cfg[key]
    draws['mid_downscale'] = float(cfg['mid_downscale'] or 0)
    draws['info'] = {
        'kernel1': info1 if draws['blur1'] else {'type': 'none'},
        'kernel2': info2 if draws['blur2'] else {'type': 'none'},
        'sinc_kernel': info_sinc,
    }
    return draws


def sample_for_image(cfg, seed, key):
    """:func:`sample_degradation` for image ``key`` of a run seeded with ``seed`` (global RNGs left as they were)."""
    with seeded(image_seed(seed, key)):
        return sample_degradation(cfg)


def describe(draws, cfg):
    """The JSON-able record of one image's draws (kernels by type/size/cut-off; stages switched off omitted)."""
    record = {'kernels': draws['info']}
    for stage in ('1', '2'):
        record[f'resize{stage}'] = {'factor': round(draws[f'resize{stage}'], 6), 'mode': draws[f'mode{stage}']}
        noise = {k: draws[f'noise{stage}_{k}'] for k in ('type', 'strength', 'gray', 'seed')}
        noise['strength'] = round(noise['strength'], 6)
        record[f'noise{stage}'] = noise
        record[f'jpeg{stage}'] = round(draws[f'jpeg{stage}'], 4) or None
    record['final'] = {'order': 'resize+sinc, jpeg' if draws['sinc_first'] else 'jpeg, resize+sinc'}
    record['final']['mode'] = draws['mode_final']
    if cfg['mid_downscale']:
        record['mode_mid'] = draws['mode_mid']
    return record


def unbatch(draws, index):
    """The draws of sample ``index`` of a collated batch (tensors of shape (B, ...), lists of strings)."""
    one = {}
    for key, value in draws.items():
        if key == 'info':
            continue
        item = value[index]
        if torch.is_tensor(item) and item.ndim == 0:
            item = item.item()
        one[key] = item
    return one
