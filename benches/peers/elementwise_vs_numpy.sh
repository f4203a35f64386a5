#!/usr/bin/env bash
# The CPU unit's element-wise and normalisation kernels (exp, gelu, tanh,
# sigmoid, softmax, layer norm) beside numpy and scipy on the same n x n
# f32 input, alternating, in GB/s of all arguments; then each kernel's
# median ratio to its peer, and gelu's and layer norm's share of the unit's
# own `add` bandwidth. numpy, scipy and threadpoolctl go into a virtual
# environment under target/ (kept between runs).
# Usage: benches/peers/elementwise_vs_numpy.sh [N=2048] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2048}
rounds=${2:-3}
venv=target/peers-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import numpy, scipy, threadpoolctl' 2>/dev/null ||
  "$venv/bin/pip" install -q numpy scipy threadpoolctl
cargo build --release -q
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
kernels=exp,gelu,tanh,sigmoid,softmax,layer_norm
for round in $(seq "$rounds"); do
  echo "== round $round: xpu (one CPU unit, $(nproc) threads), then numpy/scipy =="
  target/release/xpu --cpu-only --cpu-units 1 bench --kernel "$kernels,add" --sizes "$n" --json >"$out/xpu$round.json"
  # numpy's and OpenBLAS's settings unpinned for the peer only (see README).
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" benches/peers/numpy_elementwise.py "$n" | tee "$out/numpy$round.txt"
done
"$venv/bin/python" - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
xpu, peer = {}, {}
for r in range(1, rounds + 1):
    for row in json.load(open(f"{out}/xpu{r}.json")):
        xpu.setdefault(row["kernel"], []).append(row["gbps"])
    for line in open(f"{out}/numpy{r}.txt"):
        words = line.split()
        peer.setdefault(words[1], []).append(float(words[4]))
med = {k: statistics.median(v) for k, v in xpu.items()}
print(f"\nmedians of {rounds} rounds (GB/s):  kernel  xpu  numpy/scipy  ratio")
for k, v in peer.items():
    p = statistics.median(v)
    print(f"  {k:<11} {med[k]:7.2f} {p:7.2f}  {med[k] / p:5.2f}x")
for k in ("gelu", "layer_norm"):
    print(f"  {k} at {100 * med[k] / med['add']:.0f}% of the unit's add ({med['add']:.2f} GB/s)")
PY
