#!/usr/bin/env bash
# The four-stage image pipeline (RGB to gray, Gaussian blur sigma 1.5,
# Sobel, threshold 96) per unit kind beside OpenCV with the same thread
# count, on the shipped photographs and on a generated 3840x2160 frame,
# alternating: each side's median of warm runs in megapixels/s, and their
# ratio; xpu both fused (gray+blur and Sobel+threshold as one kernel each,
# its default) and with a task per stage (--unfused), as OpenCV runs it. opencv-python-headless goes into a virtual environment under
# target/ (kept between runs); the photographs come from
# scripts/fetch-models.sh.
# Usage: benches/peers/vision_vs_opencv.sh [ROUNDS=3] [UNITS="cpu vpu gpu"]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
kinds=${2:-cpu vpu gpu}
threads=$(nproc)
venv=target/peers-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import cv2, numpy' 2>/dev/null ||
  "$venv/bin/pip" install -q numpy opencv-python-headless
cargo build --release -q
scripts/fetch-models.sh >/dev/null
data="${XPU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/xpu}"
frames=$(mktemp -d)
trap 'rm -rf "$frames"' EXIT
"$venv/bin/python" - "$frames" <<'PY'
import sys
import cv2
import numpy as np
y, x = np.mgrid[0:2160, 0:3840]
rng = np.random.default_rng(1)
img = np.stack([x * 255 / 3840, y * 255 / 2160, (x + y) % 256], -1).astype(np.uint8)
img = cv2.GaussianBlur(img, (0, 0), 3) + rng.integers(0, 40, img.shape, dtype=np.uint8)
cv2.imwrite(f"{sys.argv[1]}/frame4k.png", img)
PY
images=("$data"/images/*.png "$frames/frame4k.png")
xpu=target/release/xpu
# One CPU unit with every core's thread, as OpenCV gets them.
available=$("$xpu" --cpu-units 1 info | awk 'NR > 1 && NF >= 6 && $1 ~ /^[0-9]+$/ { print $2 }' | sort -u)
printf '%-14s %-5s %10s %10s %10s %7s %7s\n' image unit "xpu MP/s" unfused "cv MP/s" ratio unfused
for image in "${images[@]}"; do
  for kind in $kinds; do
    grep -qx "$kind" <<<"$available" || { echo "$(basename "$image") $kind: no such unit here"; continue; }
    xs=() us=() cs=()
    for round in $(seq "$rounds"); do
      # A gray photograph goes through the last three stages.
      pipeline=gray,blur=1.5,sobel,threshold=96
      "$venv/bin/python" -c 'import cv2, sys; sys.exit(cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED).ndim != 2)' "$image" &&
        pipeline=blur=1.5,sobel,threshold=96
      for mode in fused unfused; do
        flag=()
        if [ "$mode" = unfused ]; then flag=(--unfused); fi
        report=$("$xpu" --cpu-units 1 vision "$image" --out "$frames/out.png" --unit "$kind" --pipeline "$pipeline" --bench 10 "${flag[@]}" 2>&1) || {
          echo "$(basename "$image") $kind: $(grep -m1 -i error <<<"$report")"
          continue 3
        }
        speed=$(awk '/^warm, median/ { gsub(/[(]/, "", $8); print $8 }' <<<"$report")
        if [ "$mode" = fused ]; then xs+=("$speed"); else us+=("$speed"); fi
      done
      cs+=("$("$venv/bin/python" benches/peers/opencv_vision.py "$image" "$threads" | awk '{ print $4 }')")
    done
    "$venv/bin/python" - "$(basename "$image")" "$kind" "${xs[*]}" "${us[*]}" "${cs[*]}" <<'PY'
import statistics, sys
name, kind = sys.argv[1], sys.argv[2]
x, u, c = (statistics.median(map(float, v.split())) for v in sys.argv[3:6])
print(f"{name:<14} {kind:<5} {x:10.1f} {u:10.1f} {c:10.1f} {x / c:6.2f}x {u / c:6.2f}x")
PY
  done
done
