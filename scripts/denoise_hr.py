"""Denoised copies of HR images (OpenCV non-local means or BM3D), with a provenance file (see --help).

Usage: python scripts/denoise_hr.py --input HR_DIR --output OUT_DIR --method nlm|bm3d [--strength S]
"""

from rssr_apps.cli import denoise

if __name__ == '__main__':
    denoise()
