#!/usr/bin/env bash
# Builds tapegrad with its tests and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
. tools/deps.sh
tg_need_pkgs libcmocka-dev libopenblas-dev openmpi-bin libopenmpi-dev
tg_build
meson test -C "${TG_BUILD_DIR:-build}" --print-errorlogs "$@"
