#!/usr/bin/env bash
# Configures and builds Proctor with CMake + Ninja (+ ccache) into ${BUILD_DIR:-build}.
# Extra arguments are passed to CMake's configure step (e.g. -DPROCTOR_SANITIZE=ON).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
build_type=${BUILD_TYPE:-RelWithDebInfo}
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "$@" >/dev/null
ninja -C "$build_dir" ${NINJA_TARGETS:-}
