#!/usr/bin/env bash
# Builds tapegrad and runs every benchmark, printing their figures:
#   GEMM (built-in against OpenBLAS and as a fraction of the FMA peak measured
#   in the same run), LayerNorm and one GPT-2 block (both against PyTorch when
#   /usr/bin/python3 has torch), the nanoGPT shakespeare-char CPU
#   configuration trained by train_gpt (2000 steps), then the same model for
#   150 steps idle and beside one busy process, tapegrad and PyTorch at their
#   default settings (bench/loaded.sh).
# Extra arguments go to meson test, e.g. `bench/run.sh block`.
# TG_NUM_THREADS sets the thread count for all of them. The shakespeare run
# reads $TG_SHAKESPEARE (default ../shared/data/tinyshakespeare.txt) and is
# skipped, with a message, when that file is missing or arguments were given.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
tg_need_pkgs libopenblas-dev
tg_build
build=${TG_BUILD_DIR:-build}
meson test -C "$build" --benchmark --verbose "$@"
[ $# -eq 0 ] || exit 0

data=${TG_SHAKESPEARE:-../shared/data/tinyshakespeare.txt}
if [ ! -f "$data" ]; then
    echo "shakespeare: $data not found (set TG_SHAKESPEARE to tinyshakespeare.txt); skipped"
    exit 0
fi
echo
echo "nanoGPT shakespeare-char CPU configuration (4 layers, 4 heads, dim 128, ctx 64, batch 12, 2000 steps):"
"$build/examples/train_gpt" --data "$data" --sample 0 --log "$build/shakespeare.csv" |
    grep -E "^(run:|step 2000: val loss|2000 steps in)"
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    echo "the same model and configuration trained by PyTorch (bench/torch_shakespeare.py, val loss over 200 batches):"
    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_shakespeare.py "$data" --threads "${TG_NUM_THREADS:-2}" 2>/dev/null
fi
echo
bench/loaded.sh "$build"
