#!/usr/bin/env bash
# Builds tapegrad and runs every registered benchmark in turn (meson test
# --benchmark), printing their figures. Extra arguments go to meson test, e.g.
#   bench/run.sh block --test-args=--quick
# TG_NUM_THREADS sets the thread count for all of them.
# The shakespeare training benchmark (examples/train_gpt) is not run here yet.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
tg_need_pkgs libopenblas-dev
tg_build
meson test -C "${TG_BUILD_DIR:-build}" --benchmark --verbose "$@"
