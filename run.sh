#!/usr/bin/env bash
# Builds tapegrad and runs the main job on its built-in default; extra
# arguments go to the program.
set -euo pipefail
cd "$(dirname "$0")"
. tools/deps.sh
tg_need_pkgs libopenblas-dev
tg_build
exec "${TG_BUILD_DIR:-build}/examples/train_gpt" "$@"
