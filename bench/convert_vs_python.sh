#!/usr/bin/env bash
# `runner convert` against a python3 xml.etree conversion of the same report, side by
# side in one run: wall time and peak RSS of each (GNU time), checked to agree.
# Targets: runner at least 10x faster than python, under 0.3 s, peak RSS under 3x the file.
# usage: convert_vs_python.sh BUILD_DIR [CASES]
set -euo pipefail
build=${1:?usage: convert_vs_python.sh BUILD_DIR [CASES]}
cases=${2:-100000}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/proctor-convert.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 "$here/gen_junit_report.py" "$tmp/report.xml" --cases "$cases"
size=$(stat -c %s "$tmp/report.xml")

measure() {  # measure NAME COMMAND... -> prints "NAME seconds peak_kib", best of 3 runs
  local name=$1; shift
  local best_s="" best_kib=""
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >"$tmp/$name.json"
    read -r s kib <"$tmp/time"
    if [[ -z "$best_s" ]] || awk "BEGIN {exit !($s < $best_s)}"; then best_s=$s; best_kib=$kib; fi
  done
  echo "$name $best_s $best_kib"
}

runner_line=$(measure runner "$build/agent/runner" convert "$tmp/report.xml" --format flat)
python_line=$(measure python /usr/bin/python3 "$here/convert_python.py" "$tmp/report.xml")

/usr/bin/python3 - "$tmp/runner.json" "$tmp/python.json" "$size" "$cases" "$runner_line" "$python_line" <<'PY'
import json, sys
runner, python = (json.load(open(p)) for p in sys.argv[1:3])
size, cases = int(sys.argv[3]), int(sys.argv[4])
same = runner == python
r = sys.argv[5].split(); p = sys.argv[6].split()
rs, rk, ps, pk = float(r[1]), int(r[2]), float(p[1]), int(p[2])
mib = lambda kib: kib / 1024
print(f"report: {cases} cases, {size / 2**20:.1f} MiB; outputs identical: {same}")
print(f"  runner convert  {rs:6.2f} s  peak {mib(rk):7.1f} MiB ({rk * 1024 / size:.2f}x the file)")
print(f"  python etree    {ps:6.2f} s  peak {mib(pk):7.1f} MiB ({pk * 1024 / size:.2f}x the file)")
speedup = ps / rs if rs > 0 else float('inf')
print(f"  speed-up {speedup:.1f}x (target >= 10x: {'met' if speedup >= 10 else 'NOT met'}); "
      f"runner under 0.3 s: {'met' if rs < 0.3 else 'NOT met'}; "
      f"peak under 3x file: {'met' if rk * 1024 < 3 * size else 'NOT met'}")
if not same:
    sys.exit("the two conversions disagree")
PY
