#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit and
# integration) with CTest. With PROCTOR_SANITIZE_PASS=1 (set by CI) it also builds with
# ASan+UBSan and runs the tests there (all but the packaging ones: a package is made from
# a release build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh" --with-tests
bash "$root/scripts/build.sh"
build_dir=${BUILD_DIR:-$root/build}
ctest --test-dir "$build_dir" --output-on-failure -j2 ${CTEST_ARGS:-}
# The parsers of untrusted input under libFuzzer, briefly (scripts/fuzz.sh alone runs 60 s each).
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash "$root/scripts/fuzz.sh"

if [[ "${PROCTOR_SANITIZE_PASS:-0}" == "1" ]]; then
  echo "== sanitizer build (ASan + UBSan) =="
  BUILD_DIR="$root/build-asan" BUILD_TYPE=Debug bash "$root/scripts/build.sh" -DPROCTOR_SANITIZE=ON -DPROCTOR_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$root/tests/lsan.supp":print_suppressions=0 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j2 -LE packaging ${CTEST_ARGS:-}
fi
