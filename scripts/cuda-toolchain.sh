#!/usr/bin/env bash
# Installs CUDA's compiler from the Python package registry (no GPU, no
# driver needed) into a virtual environment kept between runs, and prints
# the environment that builds xpu's `cuda` feature with it:
#
#   eval "$(scripts/cuda-toolchain.sh)"
#   cargo check --features cuda
#
# candle's CUDA kernels compile to PTX with this `nvcc`; linking and running
# the `cuda` feature also need the NVIDIA driver's libcuda (a GPU machine)
# and cuBLAS, cuRAND and NVRTC (PyPI: nvidia-cublas, nvidia-curand,
# nvidia-cuda-nvrtc). Where: ${XPU_CUDA_TOOLCHAIN:-target/cuda-toolchain}.
# Needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${XPU_CUDA_TOOLCHAIN:-target/cuda-toolchain}"
# CUDA 13's compiler (the -cu12 wheels hold no nvcc), its C runtime
# headers and CCCL.
wheels=(nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-crt==13.5.37 nvidia-cuda-cccl==13.3.5.0.6)

if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv" >&2
fi
"$venv/bin/pip" install -q "${wheels[@]}" >&2
root="$(cd "$venv" && "$PWD/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[ -x "$root/bin/nvcc" ] || { echo "no nvcc in $root" >&2; exit 1; }

# cudarc 0.19 knows CUDA up to 13.4: build against that API; sm_90 (H100,
# H200) unless CUDA_COMPUTE_CAP says otherwise.
cat <<EOF
export PATH="$root/bin:\$PATH"
export CUDA_ROOT="$root"
export CUDA_PATH="$root"
export CUDARC_CUDA_VERSION="\${CUDARC_CUDA_VERSION:-13040}"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
EOF
