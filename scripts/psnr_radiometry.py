"""PSNR of an SR GeoTIFF against its HR in a declared radiometry, and as if the data were divided by 65 535.

Usage: python scripts/psnr_radiometry.py SR.tif HR.tif [--radiometry sentinel2_l2a] [--crop 4]

Both files hold stored values (e.g. Sentinel-2 L2A DN in uint16). Pixels that
are nodata in either file (the radiometry's nodata, any band) are left out.
Prints the mean band PSNR (rssr_metrics' ``calculate_band_psnr``) of:

* the declared radiometry: model values and PSNR range from it (reflectance,
  range 1.0 for ``sentinel2_l2a``);
* the ``uint16`` profile: stored / 65 535, range 1.0 -- what BasicSR and most
  SR code do with 16-bit data.

For a linear radiometry the gap is the same for every pair of images:
20 log10(65 535 / width of the valid range in DN), 16.3 dB for Sentinel-2 L2A
(10 000 DN per unit reflectance), 24.1 dB for 12-bit data in uint16.
"""

import argparse
import math

import rssr_compat  # noqa: F401  (before basicsr)

import rasterio

from rssr_metrics.rs_metric import calculate_band_psnr
from rssr_utils.radiometry import Radiometry


def psnr_both_ways(sr, hr, radiometry, crop=0):
    """(declared PSNR, /65535 PSNR, expected gap, valid pixels) of two (H, W, C) stored arrays."""
    radiometry = Radiometry.resolve(radiometry, '--radiometry')
    mask = radiometry.valid_mask(sr) & radiometry.valid_mask(hr)
    declared = calculate_band_psnr(
        radiometry.to_model(sr), radiometry.to_model(hr), crop, mask=mask, radiometry=radiometry
    )
    plain = Radiometry.resolve('uint16')
    divided = calculate_band_psnr(plain.to_model(sr), plain.to_model(hr), crop, mask=mask, radiometry=plain)
    lo, hi = radiometry.valid_range
    return declared, divided, 20 * math.log10(65535 / (hi - lo)), int(mask.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sr')
    parser.add_argument('hr')
    parser.add_argument('--radiometry', default='sentinel2_l2a', help='profile name (default sentinel2_l2a)')
    parser.add_argument('--crop', type=int, default=0, help='border pixels left out (e.g. the scale)')
    args = parser.parse_args(argv)
    with rasterio.open(args.sr) as f, rasterio.open(args.hr) as g:
        if (f.count, f.height, f.width) != (g.count, g.height, g.width):
            parser.error(f'{args.sr} is {f.count}x{f.height}x{f.width}, {args.hr} {g.count}x{g.height}x{g.width}')
        sr, hr = f.read().transpose(1, 2, 0), g.read().transpose(1, 2, 0)
    declared, divided, gap, valid = psnr_both_ways(sr, hr, args.radiometry, args.crop)
    print(f'band PSNR, radiometry {args.radiometry}: {declared:.2f} dB')
    print(f'band PSNR, stored / 65535:        {divided:.2f} dB  (+{divided - declared:.2f} dB; expected +{gap:.2f})')
    print(f'valid pixels: {valid} of {sr.shape[0] * sr.shape[1]}')


if __name__ == '__main__':
    main()
