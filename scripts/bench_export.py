"""Export every model of a benchmark option file; onnxruntime vs PyTorch error at three sizes and CPU latency.

Usage: python scripts/bench_export.py [-opt options/benchmark_x4.yml] [--models EDSR,FAT] [--runs 3]
Results: docs/export.md.
"""

from rssr_apps.benchmark.deploy import main

if __name__ == '__main__':
    main()
