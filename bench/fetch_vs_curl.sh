#!/usr/bin/env bash
# http archive fetch + unpack: the agent's HttpArchiveFetcher (Beast download into memory,
# libarchive unpack with its safety checks) against `curl | bsdtar` on the same 50 MB zip
# served by mock_backend --serve, side by side in one run, best of 5 each.
# usage: fetch_vs_curl.sh BUILD_DIR [MB]   (needs bsdtar: apt install libarchive-tools)
set -euo pipefail
build=${1:?usage: fetch_vs_curl.sh BUILD_DIR [MB]}
mb=${2:-50}
command -v bsdtar >/dev/null || { echo "fetch_vs_curl: bsdtar is missing (apt install libarchive-tools)"; exit 2; }
tmp=$(mktemp -d /tmp/proctor-fetch.XXXXXX)
trap 'kill $backend 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir "$tmp/served"
# Half incompressible bytes, half source-like text: a service or submission with assets.
/usr/bin/python3 - "$tmp/served/archive.zip" "$mb" <<'PY'
import os, random, sys, zipfile
path, mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    size = 0
    i = 0
    while size < mb * 1024 * 1024:
        if i % 2 == 0:
            data = os.urandom(512 * 1024)
        else:
            data = "".join(f"def f_{i}_{k}(x):\n    return x * {k}\n" for k in range(12000)).encode()
        z.writestr(f"pkg/dir_{i % 17}/file_{i}.bin" if i % 2 == 0 else f"pkg/src/module_{i}.py", data)
        i += 1
        size = os.path.getsize(path) if i % 8 == 0 else size + len(data) // (1 if i % 2 else 6)
PY
size=$(stat -c %s "$tmp/served/archive.zip")
"$build/mock_backend/mock_backend" --port 0 --log-level warn --serve "$tmp/served" >"$tmp/port" &
backend=$!
until grep -q listening "$tmp/port" 2>/dev/null; do sleep 0.05; done
url="http://$(awk '{print $3}' "$tmp/port")/files/archive.zip"

agent_ms=$(PROCTOR_BENCH_ARCHIVE_URL="$url" "$build/bench/bench_fetch" --benchmark_filter=http \
  --benchmark_format=json 2>/dev/null | /usr/bin/python3 -c "import json,sys; b=json.load(sys.stdin)['benchmarks'][0]; print(f\"{b['real_time']:.0f}\")")
# curl | bsdtar twice: into a fresh folder, and replacing the last copy as the fetcher
# does (its time includes removing the previous tree).
best_fresh=""
best_replace=""
mkdir "$tmp/out"
curl -s --fail "$url" | bsdtar -xf - -C "$tmp/out"
for _ in 1 2 3 4 5; do
  start=$(date +%s%N)
  rm -rf "$tmp/out" && mkdir "$tmp/out"
  curl -s --fail "$url" | bsdtar -xf - -C "$tmp/out"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if [[ -z "$best_replace" || $ms -lt $best_replace ]]; then best_replace=$ms; fi
  rm -rf "$tmp/fresh" && mkdir "$tmp/fresh"
  start=$(date +%s%N)
  curl -s --fail "$url" | bsdtar -xf - -C "$tmp/fresh"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if [[ -z "$best_fresh" || $ms -lt $best_fresh ]]; then best_fresh=$ms; fi
done
echo "http archive fetch + unpack of a $((size / 1024 / 1024)) MiB zip ($(find "$tmp/out" -type f | wc -l) files):"
echo "  runner HttpArchiveFetcher (replaces the last copy)  ${agent_ms} ms (mean of 5)"
echo "  curl | bsdtar, replacing the last copy            ${best_replace} ms (best of 5)"
echo "  curl | bsdtar, into a fresh folder                ${best_fresh} ms (best of 5)"
