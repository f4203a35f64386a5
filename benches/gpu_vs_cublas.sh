#!/usr/bin/env bash
# xpu's GPU units beside cuBLAS and the device's copy bandwidth, in one run on
# a machine with an NVIDIA GPU and PyTorch (see gpu_vs_cublas.py).
#   XPU=path/to/xpu benches/gpu_vs_cublas.sh
# Targets (issue 4): SGEMM 4096 at least 40% of cuBLAS FP32; element-wise
# ops at least 70% of the copy bandwidth.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
xpu=${XPU:-$here/../target/release/xpu}
python3 "$here/gpu_vs_cublas.py" 1024 2048 4096
"$xpu" bench --unit gpu --kernel gemm --sizes 1024,2048,4096 --reps 10
"$xpu" bench --unit gpu --kernel add,mul,relu,exp --sizes 4096,8192 --reps 5
"$xpu" bench --unit gpu --kernel add,mul,relu,exp --sizes 4096,8192 --reps 5 --batch 20
"$xpu" bench --unit gpu --kernel sum,softmax,layer_norm,conv2d,gaussian_blur --sizes 4096 --reps 5
