#!/usr/bin/env bash
# Builds tapegrad and runs every benchmark, printing their figures:
#   GEMM (built-in against OpenBLAS and as a fraction of the FMA peak measured
#   in the same run), LayerNorm and one GPT-2 block (both against PyTorch when
#   /usr/bin/python3 has torch), the nanoGPT shakespeare-char CPU
#   configuration trained by train_gpt (2000 steps, then its exact validation
#   loss) and by PyTorch at its two settings (default threads; 2 threads with
#   OMP_WAIT_POLICY=passive), with the ratio to the faster, then the same
#   model for 150 steps idle and beside one busy process, tapegrad and
#   PyTorch at their default settings (bench/loaded.sh).
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
ckpt="$build/shakespeare.safetensors"
tg_out=$("$build/examples/train_gpt" --data "$data" --sample 0 --log "$build/shakespeare.csv" --save "$ckpt")
echo "$tg_out" | grep -E "^(run:|step 2000: val loss|2000 steps in)"
tg_ms=$(echo "$tg_out" | sed -n 's/.* steps in .*(\([0-9.]*\) ms a step).*/\1/p')
tg_full=$("$build/examples/train_gpt" --data "$data" --resume "$ckpt" --eval-only --eval-full | sed -n 's/.*loss \([0-9.]*\).*/\1/p')
echo "tapegrad: exact validation loss over the whole split: $tg_full"
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    # PyTorch at its best setting here: the faster of its defaults and 2
    # threads that do not spin; the exact loss from the run with the same
    # seed (1337, both runs).
    echo "the same model, configuration and seed trained by PyTorch (bench/torch_shakespeare.py), default threads, then 2 threads with OMP_WAIT_POLICY=passive:"
    pt_def=$(/usr/bin/python3 bench/torch_shakespeare.py "$data" --threads 0 --no-full-eval 2>/dev/null)
    echo "  $pt_def"
    pt_pas=$(OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_shakespeare.py "$data" --threads 2 2>/dev/null)
    echo "  $pt_pas"
    awk -v tg="$tg_ms" -v tgl="$tg_full" -v d="$pt_def" -v p="$pt_pas" 'BEGIN {
        split(d, a, " "); split(p, b, " ");
        best = a[5] < b[5] ? a[5] : b[5];
        printf "tapegrad %.1f ms a step against PyTorch best %.1f ms a step (whole runs / 2000): %.2fx (target 3x); exact val loss %s against %s (difference %.4f, target 0.01)\n",
            tg, 1000 * best / a[3], 1000 * best / a[3] / tg, tgl, b[11], tgl - b[11] }'
fi
echo
bench/loaded.sh "$build"
