"""Export every model of a benchmark option file; onnxruntime vs PyTorch error at three sizes, CPU latencies and
their ratio (ort / torch) per size and thread count, in one run.

Usage: python scripts/bench_export.py [-opt options/benchmark_x4.yml] [--models EDSR,FAT] [--runs 3]
       [--latency-sizes 64x64,256x256] [--threads 1,2]
Results: docs/export.md.
"""

from rssr_apps.benchmark.deploy import main

if __name__ == '__main__':
    main()
