"""Benchmark SR models (quality and cost) into a CSV, a Markdown table and a PSNR-vs-FLOPs plot.

Usage: python scripts/benchmark.py -opt options/benchmark_x4.yml [--device cuda] [--out DIR]
       [--models EDSR,FAT] [--quality trained|all|none] [--runs N] [--input-size H W] [--no-memory]
See rssr_apps/benchmark/__init__.py for the option-file keys.
"""

from rssr_apps.cli import bench

if __name__ == '__main__':
    bench()
