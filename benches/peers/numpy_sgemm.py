"""numpy's float32 matmul (OpenBLAS) at the sizes xpu's SGEMM is measured at.

Prints lines such as: numpy sgemm2048 453.2 GFLOP/s kernel=SkylakeX threads=2
"""
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

sizes = [int(s) for s in sys.argv[1:]] or [1024, 2048]
blas = next((i for i in threadpool_info() if i["internal_api"] == "openblas"), {})
for n in sizes:
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    print(f"numpy sgemm{n} {2 * n**3 / best / 1e9:.1f} GFLOP/s "
          f"kernel={blas.get('architecture')} threads={blas.get('num_threads')}")
