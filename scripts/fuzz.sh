#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer: the task JSON a backend sends
# (fuzz_task), JUnit XML a service writes (fuzz_junit), service.yaml (fuzz_service_spec) and
# orchestration descriptions with their schedule (fuzz_orchestration).
# Builds them with clang in build-fuzz (FUZZ_BUILD_DIR), runs each for FUZZ_SECONDS
# (default 60) on a copy of its seed corpus in fuzz/corpus/, prints how many inputs each
# ran, and fails when one crashes; the reproducer is kept in build-fuzz/fuzz-out/<target>/.
# Replay one: build-fuzz/fuzz/<target> <reproducer file>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
targets=(fuzz_task fuzz_junit fuzz_service_spec fuzz_orchestration)
declare -A dicts=([fuzz_task]=task.dict [fuzz_junit]=junit.dict [fuzz_service_spec]=service_spec.dict
  [fuzz_orchestration]=orchestration.dict)

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPROCTOR_FUZZ=ON -DPROCTOR_BUILD_TESTS=OFF -DPROCTOR_BUILD_BENCH=OFF >/dev/null
ninja -C "$build_dir" -j2 "${targets[@]}"

failed=()
for target in "${targets[@]}"; do
  out="$build_dir/fuzz-out/$target"
  rm -rf "$out"
  mkdir -p "$out/corpus"
  # A copy: what the run adds to the corpus stays out of the source tree.
  cp "$root/fuzz/corpus/$target/"* "$out/corpus/"
  status=0
  # -rss_limit_mb and -timeout make a memory blow-up or a hang a failure too.
  "$build_dir/fuzz/$target" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -dict="$root/fuzz/${dicts[$target]}" -artifact_prefix="$out/" "$out/corpus" >"$out/log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
  printf '%-18s %10s executions in %ss' "$target" "${runs:-?}" "$seconds"
  if ((status != 0)); then
    printf '  FAILED (exit %d)\n' "$status"
    failed+=("$target")
    tail -n 40 "$out/log"
    find "$out" -maxdepth 1 -type f ! -name log -printf '  reproducer: %p\n'
  else
    printf '\n'
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fuzz: ${failed[*]} crashed; the logs are in $build_dir/fuzz-out/" >&2
  exit 1
fi
