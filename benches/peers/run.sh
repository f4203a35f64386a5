#!/usr/bin/env bash
# xpu beside the systems it is measured against, in one run on this machine:
#   - per-task overhead (indep, chain, spread) against StarPU 1.3 (eager, lws, dmda);
#   - tiled Cholesky 4096 (tile 256, f32; f64 beside it) against StarPU's example;
#   - SGEMM 1024 and 2048 against numpy's matmul (OpenBLAS);
#   - exp, gelu, tanh, sigmoid, softmax and layer norm on 2048x2048 f32
#     against numpy and scipy, alternating, three rounds
#     (elementwise_vs_numpy.sh);
#   - the four-stage image pipeline (gray, blur, Sobel, threshold) per unit
#     kind on the shipped photographs and a 3840x2160 RGB frame against
#     OpenCV, same thread count (vision_vs_opencv.sh).
# Installs what it needs from Debian and PyPI when run as root.
# Usage: benches/peers/run.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=../shared/peers/starpu

if [ "$(id -u)" = 0 ] && ! pkg-config --exists starpu-1.3 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libstarpu-dev starpu-examples libopenblas0-pthread pkg-config gcc >/dev/null
fi
python3 -c 'import numpy, threadpoolctl' 2>/dev/null ||
  python3 -m pip install -q numpy threadpoolctl

cargo build --release -q
xpu=target/release/xpu

echo "== per-task overhead (100,000 empty tasks, $(nproc) workers) =="
for mode in indep chain spread; do
  for policy in eager round-robin work-stealing; do
    "$xpu" --cpu-only --policy "$policy" bench --dag "$mode"
  done
done
if [ -x "$peers/run.sh" ] || [ -f "$peers/run.sh" ]; then
  bash "$peers/run.sh"
else
  echo "StarPU peer script not found at $peers/run.sh"
fi

# StarPU runs on the CPU cores only (STARPU_NCPU, no accelerators), and so does xpu here.
echo "== tiled Cholesky 4096, tile 256 =="
"$xpu" --cpu-only bench --dag cholesky --size 4096 --tile 256 --dtype f32
"$xpu" --cpu-only bench --dag cholesky --size 4096 --tile 256 --dtype f64

echo "== SGEMM =="
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be pinned on this machine for old
# OpenBLAS builds; they slow numpy's, so they are unset for this command only.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benches/peers/numpy_sgemm.py 1024 2048
"$xpu" --cpu-only bench --dag gemm --size 1024 --tile 256 --reps 5
"$xpu" --cpu-only bench --dag gemm --size 2048 --tile 512 --reps 5

echo "== element-wise and normalisation, 2048x2048 f32 (GB/s of all arguments) =="
benches/peers/elementwise_vs_numpy.sh 2048 3

echo "== image pipeline per unit kind vs OpenCV, same thread count =="
benches/peers/vision_vs_opencv.sh 3
