#!/usr/bin/env bash
# Training speed beside a busy process: the same short shakespeare run
# (nanoGPT's CPU configuration, STEPS steps, no evaluation) with the machine
# to itself and then while one spinning process (started and stopped here)
# takes a core, for tapegrad and PyTorch, each at its default settings (no
# thread count, no OMP_WAIT_POLICY), plus tapegrad at --threads 1 on the
# idle machine, the reference a loaded run should stay near.
#   bench/loaded.sh [BUILD_DIR]    (STEPS=150 and TG_SHAKESPEARE=FILE apply)
# Prints one line per run: ms a step (the run's wall time / steps).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-${TG_BUILD_DIR:-build}}
data=${TG_SHAKESPEARE:-../shared/data/tinyshakespeare.txt}
steps=${STEPS:-150}
if [ ! -f "$data" ]; then
    echo "loaded: $data not found (set TG_SHAKESPEARE to tinyshakespeare.txt); skipped"
    exit 0
fi
have_torch=0
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 && have_torch=1

busy_pid=
busy_start() { sh -c 'while :; do :; done' & busy_pid=$!; }
busy_stop() { [ -z "$busy_pid" ] || kill "$busy_pid" 2>/dev/null || true; wait "$busy_pid" 2>/dev/null || true; busy_pid=; }
trap busy_stop EXIT

tapegrad() { # extra train_gpt flags
    "$build/examples/train_gpt" --data "$data" --steps "$steps" --eval-every $((steps + 1)) --eval-iters 1 \
        --sample 0 "$@" | sed -n 's/.* steps in .*(\([0-9.]*\) ms a step).*/\1/p'
}
torch_run() {
    /usr/bin/python3 bench/torch_shakespeare.py "$data" --steps "$steps" --threads 0 --eval-iters 1 \
        --no-full-eval 2>/dev/null | awk '{printf "%.1f\n", 1000 * $5 / $3}'
}

echo "shakespeare-char, $steps steps, ms a step, beside nothing and beside one busy process:"
ref=$(tapegrad --threads 1)
idle=$(tapegrad)
[ $have_torch = 1 ] && tidle=$(torch_run)
busy_start
loaded=$(tapegrad)
[ $have_torch = 1 ] && tloaded=$(torch_run)
busy_stop
printf '  %-42s %8s %8s\n' "" idle loaded
printf '  %-42s %8s %8s\n' "tapegrad, default threads ($(nproc) cores)" "$idle" "$loaded"
printf '  %-42s %8s\n' "tapegrad --threads 1" "$ref"
if [ $have_torch = 1 ]; then
    printf '  %-42s %8s %8s\n' "PyTorch, default threads and wait policy" "$tidle" "$tloaded"
    awk -v l="$loaded" -v r="$ref" -v t="$tloaded" 'BEGIN {
        printf "  loaded tapegrad: %.2fx its idle 1-thread time (target <= 1.3); PyTorch loaded / tapegrad loaded: %.2fx\n", l / r, t / l }'
else
    echo "  PyTorch: not available (/usr/bin/python3 cannot import torch)"
    awk -v l="$loaded" -v r="$ref" 'BEGIN { printf "  loaded tapegrad: %.2fx its idle 1-thread time (target <= 1.3)\n", l / r }'
fi
