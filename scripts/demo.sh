#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, makes a git
# repository of examples/submission, starts mock_backend with one task for it, runs
# `runner --once` with examples/pytest-service, and prints the payload the backend got.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh" --with-tests
bash "$root/scripts/build.sh"
build_dir=${BUILD_DIR:-$root/build}

demo=$(mktemp -d /tmp/proctor-demo.XXXXXX)
backend_pid=""
cleanup() {
  if [[ -n "$backend_pid" ]]; then kill "$backend_pid" 2>/dev/null || true; wait "$backend_pid" 2>/dev/null || true; fi
  rm -rf "$demo"
}
trap cleanup EXIT

# The submission: a student's repository with one commit on main.
cp -r "$root/examples/submission" "$demo/submission"
git -C "$demo/submission" init -q -b main
git -C "$demo/submission" add -A
git -C "$demo/submission" -c user.name=student -c user.email=student@example.com commit -q -m "lab 1"
sed "s|@SUBMISSION_URL@|file://$demo/submission|" "$root/examples/sample-task.json" | sed '1s/^/[/; $s/$/]/' >"$demo/tasks.json"

"$build_dir/mock_backend/mock_backend" --port 0 --tasks "$demo/tasks.json" --results "$demo/results.jsonl" \
  >"$demo/backend.out" 2>"$demo/backend.log" &
backend_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$demo/backend.out" 2>/dev/null && break
  sleep 0.05
done
address=$(sed -n 's/^listening on //p' "$demo/backend.out")
echo "mock backend on http://$address with 1 task; running the agent..."

set +e
"$build_dir/agent/runner" --backend-url "http://$address" --once --check-interval 0.2 \
  --service "$root/examples/pytest-service" --work-dir "$demo/work" \
  --allow-schemes https,http,ssh,git,file
status=$?
set -e
echo
echo "runner exited with $status (0 passed, 1 tests failed, 3 error); the backend received:"
/usr/bin/python3 -m json.tool "$demo/results.jsonl"
echo
echo "the task's results layout ($demo/work/results), tests.json:"
for tests in "$demo"/work/results/*/tests.json; do
  /usr/bin/python3 -m json.tool "$tests"
done
