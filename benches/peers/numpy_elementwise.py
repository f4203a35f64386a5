"""numpy's and scipy's element-wise and normalisation kernels on the
inputs `xpu bench --kernel exp,gelu,tanh,sigmoid,softmax,layer_norm`
times, reported as xpu reports them: GB/s of all arguments (inputs and
output) over the best time of five runs.

Prints lines such as: numpy exp 2048 f32 17.7 GB/s (3.79 ms) threads=1
"""
import sys
import time

import numpy as np
import scipy.special
from threadpoolctl import threadpool_info

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
x = (np.random.rand(n, n).astype(np.float32) - 0.5) * 8
gamma = np.ones(n, dtype=np.float32)
beta = np.zeros(n, dtype=np.float32)


def gelu(v):
    # GPT-2's tanh approximation, as xpu's gelu computes it.
    return 0.5 * v * (1.0 + np.tanh(0.7978845608 * (v + 0.044715 * v * v * v)))


def layer_norm(v):
    mean = v.mean(axis=-1, keepdims=True)
    var = v.var(axis=-1, keepdims=True)
    return (v - mean) / np.sqrt(var + 1e-5) * gamma + beta


cases = {
    "exp": (np.exp, 2),
    "gelu": (gelu, 2),
    "tanh": (np.tanh, 2),
    "sigmoid": (scipy.special.expit, 2),
    "softmax": (lambda v: scipy.special.softmax(v, axis=-1), 2),
    "layer_norm": (layer_norm, 2),
}
names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(cases)
threads = next((i["num_threads"] for i in threadpool_info()), 1)
for name in names:
    f, tensors = cases[name]
    f(x)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        f(x)
        best = min(best, time.perf_counter() - t)
    gbps = tensors * x.nbytes / best / 1e9
    print(f"numpy {name} {n} f32 {gbps:.2f} GB/s ({best * 1e3:.2f} ms) threads={threads}")
