#!/usr/bin/env python3
"""Task pickup latency: from a task being queued at mock_backend to its service process
starting, over N tasks queued one at a time, with `runner --check-interval 0.05` and a
no-op service (git submission reused from the slot's cache after the first task). Each
task is queued at a random moment (uniform over two poll intervals after the previous
result), as tasks reach a real backend; queuing right after a result would always
land just behind the agent's immediate next poll and measure a full interval.

usage: pickup_latency.py BUILD_DIR [--tasks 200] [--interval 0.05]"""

import argparse
import json
import os
import pathlib
import random
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request


def http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=pathlib.Path)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="proctor-pickup-") as tmp:
        tmp = pathlib.Path(tmp)
        repo = tmp / "repo"
        repo.mkdir()
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
                   GIT_COMMITTER_EMAIL="b@x")
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        (repo / "README").write_text("bench\n")
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=repo, check=True, env=env)
        starts = tmp / "starts"
        starts.mkdir()
        service = tmp / "service"
        service.mkdir()
        # The first thing the service does is note the time: that is "the process started".
        (service / "service.yaml").write_text(
            f"cmd: date +%s%N > {starts}/${{task_id}}; echo '<testsuite><testcase name=\"noop\"/></testsuite>' > ${{junit_xml}}\n")

        backend = subprocess.Popen([str(args.build_dir / "mock_backend" / "mock_backend"), "--port", "0",
                                    "--log-level", "warn"], stdout=subprocess.PIPE, text=True)
        url = "http://" + backend.stdout.readline().split()[-1]
        runner = subprocess.Popen([str(args.build_dir / "agent" / "runner"), "--backend-url", url,
                                   "--check-interval", str(args.interval), "--service", str(service),
                                   "--work-dir", str(tmp / "work"), "--allow-schemes", "file",
                                   "--logger-level", "warning"])
        latencies = []
        rng = random.Random(1)
        try:
            for n in range(args.tasks):
                # Tasks reach a real backend at random moments, not just after the agent's
                # previous result (when it has just polled): randomise the arrival phase.
                time.sleep(rng.uniform(0, 2 * args.interval))
                queued = time.time_ns()
                http(url + "/admin/tasks", {"id": f"t{n}", "repositoryUrl": f"file://{repo}"})
                while http(url + "/admin/stats")["results"] < n + 1:
                    time.sleep(0.002)
                started = int((starts / f"t{n}").read_text())
                latencies.append((started - queued) / 1e6)
        finally:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=30)
            backend.send_signal(signal.SIGTERM)
            backend.wait(timeout=10)

    first, rest = latencies[0], sorted(latencies[1:])
    pct = lambda p: rest[min(len(rest) - 1, int(p * len(rest)))]
    print(f"pickup latency over {len(rest)} tasks (check-interval {args.interval}s; first task, a fresh clone, "
          f"{first:.1f} ms, not counted):")
    print(f"  mean {statistics.mean(rest):.1f} ms  median {pct(0.5):.1f} ms  p90 {pct(0.9):.1f} ms  "
          f"p99 {pct(0.99):.1f} ms  max {rest[-1]:.1f} ms")
    print(f"  target: under 50 ms -> {'met' if pct(0.99) < 50 else 'p99 NOT met'} (p99), "
          f"{'met' if statistics.mean(rest) < 50 else 'NOT met'} (mean)")


if __name__ == "__main__":
    main()
