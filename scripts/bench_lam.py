"""Speed-up of batched LAM path steps (``--batch 10``) over one step at a time, EDSR-size model, same run.

Usage: python scripts/bench_lam.py [--lr-size 48] [--steps 10] [--batch 10] [--repeats 3] [--threads 1 2]
       [--device cpu|cuda]   (see rssr_apps/lam/bench.py)
"""

from rssr_apps.lam.bench import main

if __name__ == '__main__':
    main()
