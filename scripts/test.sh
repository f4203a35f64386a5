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
# (lavapipe, a software GPU, when there is no real one).
packages=(mesa-vulkan-drivers)
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

if [ "${CI:-}" = "true" ]; then
  export XPU_REQUIRE_BACKENDS="cpu,wgpu"
  echo "CI: required backends: $XPU_REQUIRE_BACKENDS"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --all-features -- -D warnings
echo "== cargo test"
cargo test --all-features
