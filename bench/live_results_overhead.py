#!/usr/bin/env python3
"""What the live results cost a task: wall time per task with the results layout and the
event stream on (and a `runner subscribe` reading every event) against both switched off
(--no-results-layout --no-events), side by side in one run, rounds alternating.

Each round starts mock_backend with TASKS tasks queued and one agent, and times from the
agent's start to the last result recorded. The service is real pytest over CASES trivial
tests writing JUnit XML (so the layout gets CASES records a task, the stream 2 x CASES events).

usage: live_results_overhead.py BUILD_DIR [--tasks 20] [--cases 200] [--rounds 5]"""

import argparse
import json
import os
import pathlib
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


def make_repo(tmp):
    repo = tmp / "repo"
    repo.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@x")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "README").write_text("bench\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=repo, check=True, env=env)
    return repo


def run_round(build, tmp, repo, service, tasks, live, n):
    work = tmp / f"work-{n}"
    backend = subprocess.Popen([str(build / "mock_backend" / "mock_backend"), "--port", "0", "--log-level", "warn"],
                               stdout=subprocess.PIPE, text=True)
    url = "http://" + backend.stdout.readline().split()[-1]
    http(url + "/admin/tasks", [{"id": f"t{i}", "repositoryUrl": f"file://{repo}"} for i in range(tasks)])
    socket_path = tmp / f"ev-{n}.sock"
    flags = ["--events-socket", str(socket_path)] if live else ["--no-results-layout", "--no-events"]
    start = time.monotonic()
    runner = subprocess.Popen([str(build / "agent" / "runner"), "--backend-url", url, "--check-interval", "0.05",
                               "--service", str(service), "--work-dir", str(work), "--allow-schemes", "file",
                               "--logger-level", "warning", *flags])
    subscriber = None
    events = 0
    try:
        if live:
            while not socket_path.exists():
                time.sleep(0.001)
            # Its output goes to a file: a pipe nobody reads would make it a stuck subscriber.
            subscriber = subprocess.Popen([str(build / "agent" / "runner"), "subscribe", "--socket", str(socket_path)],
                                          stdout=open(tmp / f"events-{n}.jsonl", "wb"))
        while http(url + "/admin/stats")["results"] < tasks:
            time.sleep(0.005)
        wall = time.monotonic() - start
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
        if subscriber:
            subscriber.wait(timeout=30)
            events = (tmp / f"events-{n}.jsonl").read_bytes().count(b"\n")
        backend.send_signal(signal.SIGTERM)
        backend.wait(timeout=10)
    return wall / tasks, events


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=pathlib.Path)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="proctor-live-") as tmp:
        tmp = pathlib.Path(tmp)
        repo = make_repo(tmp)
        service = tmp / "service"
        service.mkdir()
        tests = "".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n\n" for i in range(args.cases))
        (service / "test_many.py").write_text(tests)
        (service / "service.yaml").write_text(
            "cmd: /usr/bin/python3 -m pytest -q -p no:cacheprovider --junit-xml=${junit_xml} test_many.py\n"
            "timeout: 300\n")
        per_task = {True: [], False: []}
        events = []
        # A warm-up round, not counted: the first pytest runs read everything from disk.
        run_round(args.build_dir, tmp, repo, service, 3, False, 0)
        n = 1
        for r in range(args.rounds):
            # Alternate which mode goes first, so drift on the machine hits both alike.
            for live in ((True, False) if r % 2 == 0 else (False, True)):
                seconds, seen = run_round(args.build_dir, tmp, repo, service, args.tasks, live, n)
                n += 1
                per_task[live].append(seconds)
                if live:
                    events.append(seen)
                print(f"round {r + 1} {'on ' if live else 'off'}: {seconds * 1000:.1f} ms per task"
                      + (f" ({seen} events to the subscriber)" if live else ""), flush=True)

    on = statistics.median(per_task[True])
    off = statistics.median(per_task[False])
    # Each round runs both modes back to back: their difference cancels the machine's
    # drift from round to round, which on a small VM is larger than what is measured.
    paired = statistics.median(a - b for a, b in zip(per_task[True], per_task[False]))
    print(f"\n{args.tasks} tasks x {args.cases} pytest cases, {args.rounds} rounds, medians:")
    print(f"  layout + events on : {on * 1000:.1f} ms per task")
    print(f"  both off           : {off * 1000:.1f} ms per task")
    print(f"  added              : {(on - off) * 1000:+.1f} ms per task = {(on / off - 1) * 100:+.2f}% "
          f"(target < 2%)")
    print(f"  paired (per round) : {paired * 1000:+.1f} ms per task = {paired / off * 100:+.2f}% (median of on - off)")


if __name__ == "__main__":
    main()
