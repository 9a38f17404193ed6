#!/usr/bin/env bash
# Builds Proctor in Release into ${BUILD_DIR:-build-package} and makes the Debian package
# with CPack; prints the .deb's path and size. Needs dpkg-dev (dpkg-shlibdeps) and file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build-package}
# Only the runner goes into the package: no tests, benchmarks or sanitizers.
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPROCTOR_BUILD_TESTS=OFF -DPROCTOR_BUILD_BENCH=OFF -DPROCTOR_SANITIZE=OFF >/dev/null
ninja -C "$build_dir" runner
# Quiet unless it fails (CPack prints its errors on stdout).
if ! out=$(cd "$build_dir" && cpack -G DEB 2>&1); then
  echo "$out" >&2
  exit 1
fi
deb=$(ls -t "$build_dir"/proctor-runner_*.deb | head -n 1)
echo "$deb $(stat -c %s "$deb") bytes"
