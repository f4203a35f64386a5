"""The GPU references for xpu's GPU figures, on the same device in the same run:
cuBLAS FP32 SGEMM through torch.matmul (TF32 off), and the device's memory
bandwidth as measured by a device-to-device copy.

Prints lines such as: cublas sgemm4096 51234.5 GFLOP/s
                      copy 1073741824 bytes 2950.1 GB/s
"""
import sys

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
print("device", torch.cuda.get_device_name(0))


def timed(fn, reps=20):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


for n in [int(s) for s in sys.argv[1:]] or [1024, 2048, 4096]:
    a = torch.rand(n, n, device=dev)
    b = torch.rand(n, n, device=dev)
    t = timed(lambda: a @ b)
    print(f"cublas sgemm{n} {2 * n**3 / t / 1e9:.1f} GFLOP/s")

src = torch.empty(256 << 20, dtype=torch.float32, device=dev)
dst = torch.empty_like(src)
t = timed(lambda: dst.copy_(src))
moved = 2 * src.numel() * 4  # read + write
print(f"copy {src.numel() * 4} bytes {moved / t / 1e9:.1f} GB/s")
