"""Patches to BasicSR's archs: EDSR and RCAN for any band count.

BasicSR 1.4.2's EDSR and RCAN take ``num_in_ch`` but shape their ``rgb_mean``
as (1, 3, 1, 1), so a 4-band network fails at its first forward (or at
construction, given 4 means). With the patch, ``rgb_mean`` holds one value per
input band (or one for all); a network of ``num_in_ch`` != 3 without its own
``rgb_mean`` is refused by name, since the RGB means of DIV2K are no guess for
other bands. RGB networks are built exactly as before.
"""

import functools

_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # the default of both archs


def _band_mean_init(original):
    @functools.wraps(original)
    def __init__(self, num_in_ch, num_out_ch, *args, rgb_mean=None, **kwargs):
        import torch

        name = type(self).__name__
        if rgb_mean is None and num_in_ch != 3:
            raise ValueError(
                f'network_g.rgb_mean: {name} with num_in_ch {num_in_ch} needs the mean of each band '
                f'({num_in_ch} values in model units, e.g. about [0.05, 0.07, 0.06, 0.25] for Sentinel-2 B2, B3, '
                'B4, B8 reflectance), or one value for all.'
            )
        mean = _RGB_MEAN if rgb_mean is None else tuple(rgb_mean)
        if len(mean) not in (1, num_in_ch):
            raise ValueError(f'network_g.rgb_mean: {len(mean)} values for {num_in_ch} bands; give one per band.')
        original(self, num_in_ch, num_out_ch, *args, **kwargs)  # builds with the RGB default mean
        self.mean = torch.Tensor(mean).view(1, -1, 1, 1)

    __init__._rssr_original = original
    return __init__


def patch_band_means():
    """EDSR and RCAN take one ``rgb_mean`` value per band (see the module docstring); idempotent."""
    from basicsr.archs.edsr_arch import EDSR
    from basicsr.archs.rcan_arch import RCAN

    for cls in (EDSR, RCAN):
        original = getattr(cls.__init__, '_rssr_original', cls.__init__)
        cls.__init__ = _band_mean_init(original)
