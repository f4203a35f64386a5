#!/usr/bin/env bash
# Generation on the LPU (`xpu generate`) against llama.cpp (llama-cpp-python)
# on the same GGUF model, prompt, token count and thread count, alternating
# in one run; prints each round, the medians and the ratio.
#
#   benches/llm_vs_llamacpp.sh            # after scripts/fetch-models.sh
#   ROUNDS=5 TOKENS=256 benches/llm_vs_llamacpp.sh
#
# The first run installs llama-cpp-python into target/llamacpp-venv, which
# builds llama.cpp from source (about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

data=${XPU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/xpu}
model=${MODEL:-$data/models/SmolLM2-135M-Instruct.Q4_1.gguf}
prompt=${PROMPT:-The capital of France is}
tokens=${TOKENS:-128}
rounds=${ROUNDS:-3}
threads=$(nproc)
venv=target/llamacpp-venv

[ -f "$model" ] || { echo "no model at $model: run scripts/fetch-models.sh" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    echo "installing llama-cpp-python into $venv (builds llama.cpp, several minutes)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet llama-cpp-python
fi
cargo build --release --quiet

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
xpu_prompt=() xpu_gen=() cpp_prompt=() cpp_gen=()
echo "model: $model; prompt: \"$prompt\"; $tokens tokens; $threads threads; $rounds rounds"
for round in $(seq "$rounds"); do
    out=$(target/release/xpu generate "$prompt" --max-tokens "$tokens" 2>/dev/null)
    p=$(echo "$out" | sed -n 's/^prompt: .* in \([0-9.]*\) ms.*/\1/p')
    g=$(echo "$out" | sed -n 's/^generation: .*, \([0-9.]*\) tokens\/s/\1/p')
    xpu_prompt+=("$p") xpu_gen+=("$g")
    out=$("$venv/bin/python" benches/llamacpp_generate.py "$model" "$prompt" "$tokens" "$threads" 2>/dev/null)
    cp=$(echo "$out" | sed -n 's/^prompt-ms \([0-9.]*\) .*/\1/p')
    cg=$(echo "$out" | sed -n 's/.*generation-tps \([0-9.]*\)/\1/p')
    cpp_prompt+=("$cp") cpp_gen+=("$cg")
    echo "round $round: xpu LPU prompt $p ms, $g tokens/s | llama.cpp prompt $cp ms, $cg tokens/s"
done
xg=$(printf '%s\n' "${xpu_gen[@]}" | median)
cg=$(printf '%s\n' "${cpp_gen[@]}" | median)
xp=$(printf '%s\n' "${xpu_prompt[@]}" | median)
cp=$(printf '%s\n' "${cpp_prompt[@]}" | median)
echo "median generation: xpu $xg tokens/s, llama.cpp $cg tokens/s, ratio $(awk "BEGIN {printf \"%.2f\", $xg / $cg}")"
echo "median prompt: xpu $xp ms, llama.cpp $cp ms, ratio (llama.cpp time / xpu time) $(awk "BEGIN {printf \"%.2f\", $cp / $xp}")"
