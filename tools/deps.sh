#!/usr/bin/env bash
# Installs what the build needs when it is missing: via apt-get when run as
# root, otherwise it prints the exact command and fails. Sourced by run.sh and
# test.sh.
tg_need_pkgs() {
    local missing=()
    command -v meson >/dev/null 2>&1 || missing+=(meson)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    local p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null || {
            echo "apt-get install ${missing[*]} failed" >&2
            return 1
        }
    else
        echo "missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# Configures build/ when it is not configured yet, then compiles.
tg_build() {
    local dir=${TG_BUILD_DIR:-build}
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
