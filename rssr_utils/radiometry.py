"""Radiometry: how a sensor's stored values (DN) map to the values a model sees, and back.

One :class:`Radiometry` is declared once (the option file's top-level
``radiometry:``, a ``--radiometry`` flag, a sidecar's or an ONNX file's
metadata) and carried everywhere: datasets read stored values and call
:meth:`Radiometry.to_model`, metrics take their data range from
:meth:`Radiometry.model_range`, inference writes :meth:`Radiometry.from_model`
back in the input's type, and exports record :meth:`Radiometry.to_dict`.

``model = stored * scale + offset`` per band (a one-element list applies to
every band). ``valid_range`` is in stored values: the values that carry data,
the range outputs are clipped to, and, mapped to model values, the data range
of PSNR and SSIM (a 12-bit sensor in uint16 is not scored against 65 535).
``nodata`` (stored value) marks pixels that carry nothing: a pixel is invalid
where any band holds it (or is NaN); it must lie outside ``valid_range`` so a
valid output is never written as nodata.

Profiles (:data:`PROFILES`):

============== =============== ========= ================= ======== =========
name            scale           offset    valid_range       nodata   bit depth
============== =============== ========= ================= ======== =========
uint8           1/255           0         0 - 255           -        8
uint12          1/4095          0         0 - 4095          -        12
uint16          1/65535         0         0 - 65535         -        16
sentinel2_l2a   1e-4            -0.1      1000 - 11000      0        12
landsat_c2_l2   2.75e-5         -0.2      7273 - 43636      0        16
============== =============== ========= ================= ======== =========

``sentinel2_l2a`` is reflectance = (DN - 1000) / 10000 (processing baseline
04.00 and later), so its valid range is reflectance 0 - 1 (a PSNR range of
1.0); ``landsat_c2_l2`` is reflectance = 2.75e-5 DN - 0.2 (Collection 2
Level-2), valid range reflectance 0 - 1. ``uint8`` is exactly today's 8-bit
behaviour (stored / 255 in float32).

Sensor profiles also hold each band's MTF at Nyquist (:data:`SENTINEL2_MTF`)
by band name, for sensor-like LR. ``band_names`` says which sensor band each
model band is; a 4-band Sentinel-2 stack defaults to B2, B3, B4, B8 (blue,
green, red, NIR: the 10 m bands in band order) and a 10-band one to the 10 and
20 m bands in band order.
"""

from typing import Dict, List, Optional, Tuple, Union

import msgspec
import numpy as np

# Sentinel-2 MSI MTF at Nyquist per band (the values opensr-degradation and the ESA data quality reports use).
SENTINEL2_MTF = {
    'B2': 0.26,
    'B3': 0.28,
    'B4': 0.24,
    'B8': 0.26,
    'B5': 0.38,
    'B6': 0.34,
    'B7': 0.34,
    'B8A': 0.33,
    'B11': 0.22,
    'B12': 0.23,
}
_S2_DEFAULT_BANDS = {
    4: ['B2', 'B3', 'B4', 'B8'],
    10: ['B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B11', 'B12'],
}


class RadiometryError(ValueError):
    """A radiometry that cannot be used; the message names where it came from and the fix."""


class Radiometry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A radiometry: stored values <-> model values, per band.

    Args:
        scale (list[float]): Per-band gain (one value: every band). Must not be 0.
        offset (list[float]): Per-band offset, in model units. Default [0].
        valid_range (tuple[float, float]): Lowest and highest stored values that carry data.
        nodata (float | None): Stored value of pixels that carry nothing. Default None.
        bit_depth (int | None): Bits of the sensor's data (informative; 12 for Sentinel-2 in uint16).
        name (str | None): The profile it came from, if any.
        band_names (list[str] | None): Sensor band of each model band (e.g. ['B2', 'B3', 'B4', 'B8']).
        mtf (dict[str, float] | None): MTF at Nyquist by band name (sensor profiles).
    """

    scale: List[float]
    offset: List[float] = msgspec.field(default_factory=lambda: [0.0])
    valid_range: Tuple[float, float] = (0.0, 255.0)
    nodata: Optional[float] = None
    bit_depth: Optional[int] = None
    name: Optional[str] = None
    band_names: Optional[List[str]] = None
    mtf: Optional[Dict[str, float]] = None

    def __post_init__(self):
        if not self.scale or not self.offset or any(s == 0 or not np.isfinite(s) for s in self.scale):
            raise RadiometryError(f'radiometry: scale {self.scale} must be non-empty, finite and non-zero per band.')
        lo, hi = self.valid_range
        if not lo < hi:
            raise RadiometryError(f'radiometry: valid_range {list(self.valid_range)} must be [low, high], low < high.')
        if self.nodata is not None and lo <= self.nodata <= hi:
            raise RadiometryError(
                f'radiometry: nodata {self.nodata} lies inside valid_range {list(self.valid_range)}; '
                'a valid output could then be written as nodata. Narrow the range or change nodata.'
            )

    # --- per-band values ----------------------------------------------------------------------------------------
    def _per_band(self, values, num_bands, what):
        values = np.asarray(values, dtype=np.float64)
        if values.size == 1:
            return np.full(num_bands, values.item())
        if values.size != num_bands:
            raise RadiometryError(
                f'radiometry: {what} has {values.size} values but the image has {num_bands} bands; '
                'give one value or one per band.'
            )
        return values

    def gains(self, num_bands):
        """(scale, offset): float64 arrays of ``num_bands`` values."""
        return self._per_band(self.scale, num_bands, 'scale'), self._per_band(self.offset, num_bands, 'offset')

    def model_range(self, num_bands):
        """Per-band (low, high) of the valid range in model values: two float64 arrays of ``num_bands``."""
        scale, offset = self.gains(num_bands)
        a, b = self.valid_range[0] * scale + offset, self.valid_range[1] * scale + offset
        return np.minimum(a, b), np.maximum(a, b)

    def data_range(self, num_bands):
        """Per-band width of the valid range in model values (PSNR's peak; 1.0 for ``uint8``, ``sentinel2_l2a``)."""
        lo, hi = self.model_range(num_bands)
        return hi - lo

    def band_mtf(self, num_bands):
        """MTF at Nyquist of each band (list of ``num_bands`` floats); a RadiometryError when the profile has none."""
        names = self.band_names
        if names is None and self.mtf and set(SENTINEL2_MTF) <= set(self.mtf):
            names = _S2_DEFAULT_BANDS.get(num_bands)
        if not self.mtf or not names:
            raise RadiometryError(
                f'radiometry {self.name or "(explicit)"}: no MTF for {num_bands} bands; give radiometry.band_names '
                f'(sensor band of each band, e.g. {list(SENTINEL2_MTF)[:4]}) with a sensor profile, or mtf: {{...}}.'
            )
        if len(names) != num_bands:
            raise RadiometryError(f'radiometry: band_names {names} has {len(names)} names for {num_bands} bands.')
        missing = [n for n in names if n not in self.mtf]
        if missing:
            raise RadiometryError(f'radiometry: no MTF for band(s) {missing}; known: {sorted(self.mtf)}.')
        return [float(self.mtf[n]) for n in names]

    def select(self, bands):
        """The radiometry of the 1-based ``bands`` of a file (per-band lists and band names picked and ordered)."""
        index = [b - 1 for b in bands]

        def pick(values):
            return values if values is None or len(values) == 1 else [values[i] for i in index]

        # Without band_names, a Sentinel-2 profile's defaults follow the selected band count (band_mtf).
        names = None if self.band_names is None else [self.band_names[i] for i in index]
        return msgspec.structs.replace(self, scale=pick(self.scale), offset=pick(self.offset), band_names=names)

    # --- conversions ----------------------------------------------------------------------------------------------
    @property
    def dtype(self):
        """The stored type outputs are written in: uint8 up to 8 bits, uint16 up to 16, else float32."""
        if self.valid_range[0] >= 0 and self.valid_range[1] <= 255 and float(self.valid_range[1]).is_integer():
            return np.dtype(np.uint8)
        if self.valid_range[0] >= 0 and self.valid_range[1] <= 65535 and float(self.valid_range[1]).is_integer():
            return np.dtype(np.uint16)
        return np.dtype(np.float32)

    def valid_mask(self, stored):
        """(H, W) bool, True where the pixel carries data: no band equals ``nodata`` and none is NaN.

        Args:
            stored (np.ndarray): (H, W, C) or (H, W) stored values.
        """
        stored = stored if stored.ndim == 3 else stored[..., None]
        mask = np.ones(stored.shape[:2], dtype=bool)
        if self.nodata is not None:
            mask &= ~np.any(stored == self.nodata, axis=2)
        if np.issubdtype(stored.dtype, np.floating):
            mask &= ~np.any(np.isnan(stored), axis=2)
        return mask

    def to_model(self, stored):
        """Stored values (H, W, C) of any dtype -> float32 model values (H, W, C).

        Computed in float64 and rounded once to float32, so ``uint8`` gives exactly ``stored / 255`` in float32.
        Nodata pixels are converted like the others; use :meth:`valid_mask` and :func:`fill_invalid`.
        """
        stored = stored if stored.ndim == 3 else stored[..., None]
        scale, offset = self.gains(stored.shape[2])
        return (stored.astype(np.float64) * scale + offset).astype(np.float32)

    def from_model(self, model, mask=None):
        """Model values (H, W, C) -> stored values in :attr:`dtype`, rounded and clipped to ``valid_range``.

        Args:
            model (np.ndarray): (H, W, C) float model values.
            mask (np.ndarray | None): (H, W) bool, True = valid; False pixels get ``nodata`` in every band.
        """
        model = model if model.ndim == 3 else model[..., None]
        scale, offset = self.gains(model.shape[2])
        stored = (model.astype(np.float64) - offset) / scale
        dtype = self.dtype
        if dtype.kind in 'ui':
            stored = np.round(stored)
        stored = np.clip(stored, *self.valid_range).astype(dtype)
        if mask is not None and self.nodata is not None:
            stored[~mask] = self.nodata
        return stored

    def to_dict(self):
        """A JSON-able dict (checkpoints, sidecars, ONNX metadata); :meth:`resolve` reads it back."""
        return msgspec.to_builtins(self)

    @classmethod
    def resolve(cls, spec, where='radiometry'):
        """A Radiometry from a profile name, an explicit dict (optionally with ``profile:`` to start from), or one.

        Args:
            spec (str | dict | Radiometry | None): None gives the ``uint8`` profile (today's behaviour).
            where (str): Named in errors (e.g. ``'options/x.yml: radiometry'``).
        """
        if spec is None:
            return PROFILES['uint8']
        if isinstance(spec, Radiometry):
            return spec
        if isinstance(spec, str):
            if spec not in PROFILES:
                raise RadiometryError(f'{where}: unknown profile {spec!r}; use one of {sorted(PROFILES)} or numbers.')
            return PROFILES[spec]
        if not isinstance(spec, dict):
            raise RadiometryError(f'{where}: {spec!r} is neither a profile name ({sorted(PROFILES)}) nor a mapping.')
        spec = dict(spec)
        base = spec.pop('profile', None)
        if base is not None:
            spec = {**Radiometry.resolve(base, where).to_dict(), **spec}
        for key in ('scale', 'offset'):
            if isinstance(spec.get(key), (int, float)):
                spec[key] = [spec[key]]
        try:
            return msgspec.convert(spec, cls)
        except msgspec.ValidationError as error:
            raise RadiometryError(
                f'{where}: {error}; give {{scale: [..], offset: [..], valid_range: [lo, hi], nodata: 0, '
                'bit_depth: 12} or a profile name.'
            ) from None


def fill_invalid(model, mask):
    """Fill invalid pixels with the nearest valid pixel's values, so the network never sees nodata.

    Valid pixels are left exactly as they are, so a valid pixel next to a nodata block gets the same input
    as if the block held its nearest neighbours' values (no fill value bleeds into it).

    Args:
        model (np.ndarray): (H, W, C) model values.
        mask (np.ndarray): (H, W) bool, True = valid.

    Returns:
        np.ndarray: (H, W, C), a new array; unchanged copy when everything is valid. All-invalid input is
        returned as zeros.
    """
    if mask.all():
        return model.copy()
    if not mask.any():
        return np.zeros_like(model)
    from scipy import ndimage

    index = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return model[index[0], index[1]]


_profile = Radiometry
PROFILES = {
    'uint8': _profile(scale=[1 / 255], valid_range=(0, 255), bit_depth=8, name='uint8'),
    'uint12': _profile(scale=[1 / 4095], valid_range=(0, 4095), bit_depth=12, name='uint12'),
    'uint16': _profile(scale=[1 / 65535], valid_range=(0, 65535), bit_depth=16, name='uint16'),
    'sentinel2_l2a': _profile(
        scale=[1e-4],
        offset=[-0.1],
        valid_range=(1000, 11000),
        nodata=0,
        bit_depth=12,
        name='sentinel2_l2a',
        mtf=dict(SENTINEL2_MTF),
    ),
    'landsat_c2_l2': _profile(
        scale=[2.75e-5], offset=[-0.2], valid_range=(7273, 43636), nodata=0, bit_depth=16, name='landsat_c2_l2'
    ),
}

RadiometrySpec = Union[str, dict, Radiometry, None]
