#!/usr/bin/env bash
# Idle agent memory: runner polling an empty mock_backend every 0.05 s for a while,
# then its resident set size (VmRSS) and peak (VmHWM). Target: RSS under 10 MB.
# usage: idle_rss.sh BUILD_DIR [SECONDS] [SLOTS]
set -euo pipefail
build=${1:?usage: idle_rss.sh BUILD_DIR [SECONDS] [SLOTS]}
seconds=${2:-10}
slots=${3:-1}
tmp=$(mktemp -d /tmp/proctor-idle.XXXXXX)
trap 'kill $runner $backend 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$build/mock_backend/mock_backend" --port 0 --log-level warn >"$tmp/port" &
backend=$!
until grep -q listening "$tmp/port" 2>/dev/null; do sleep 0.05; done
url="http://$(awk '{print $3}' "$tmp/port")"
"$build/agent/runner" --backend-url "$url" --check-interval 0.05 --concurrent "$slots" \
  --service /nonexistent --work-dir "$tmp/work" --logger-level warning &
runner=$!
sleep "$seconds"  # the measurement window itself, not synchronisation
polls=$(/usr/bin/python3 -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + '/admin/stats'))['requests'])" "$url" 2>/dev/null || echo "?")
rss=$(awk '/VmRSS/ {print $2}' /proc/$runner/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$runner/status)
echo "idle runner ($slots slot(s), ${seconds}s, $polls polls): RSS $((rss / 1024)).$(((rss % 1024) * 10 / 1024)) MiB, peak $((hwm / 1024)).$(((hwm % 1024) * 10 / 1024)) MiB (target: RSS under 10 MB)"
