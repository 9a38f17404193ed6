#!/usr/bin/env python3
"""What the live results cost a task: wall time per task with the results layout and the
event stream on (and a `runner subscribe` reading every event) against both switched off
(--no-results-layout --no-events), side by side in one run, rounds alternating.

Each round starts mock_backend and one agent, waits until the agent answers /healthz (and,
with the stream on, until the subscriber is counted in /metrics, so it misses no event),
then queues TASKS tasks and times from there until the last result is recorded and, with
the layout on, every task's tests.json has its test_suite.status (a layout still being
written is not done). The service is real pytest over CASES trivial tests writing JUnit
XML, so the layout gets CASES records a task and the stream 2 x CASES + 7 events.

File creation is timed before and after (a folder and three files, as a layout record
is): a journal-less ext4 hands out inodes slowly for minutes after many deletions, which
moves the "on" side only; the figure tells such a run apart.

usage: live_results_overhead.py BUILD_DIR [--tasks 20] [--cases 200] [--rounds 5] [--dir DIR]"""

import argparse
import json
import os
import pathlib
import signal
import socket
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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metric(base, name):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def wait_for(condition, what, timeout=60, interval=0.005):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def ready(base):
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def layouts_done(results, tasks):
    for i in range(tasks):
        try:
            if json.loads((results / f"t{i}" / "tests.json").read_text())["test_suite"].get("status") in (None, ""):
                return False
        except (OSError, ValueError, KeyError):
            return False  # not there yet, or caught between two writes
    return True


def file_creation_us(where, records=300):
    """Microseconds a file takes to create here, records made as a layout makes them."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="calibrate-", dir=where))
    start = time.perf_counter()
    for i in range(records):
        record = folder / f"r{i}"
        record.mkdir()
        for name in ("output.json", "summary.txt", "log.txt"):
            (record / name).write_bytes(b"{}\n")
    seconds = time.perf_counter() - start
    # Left in place until the end: deleting it now would slow the next creations down.
    return seconds / (records * 4) * 1e6


def run_round(build, tmp, repo, service, tasks, live, n):
    work = tmp / f"work-{n}"
    backend = subprocess.Popen([str(build / "mock_backend" / "mock_backend"), "--port", "0", "--log-level", "warn"],
                               stdout=subprocess.PIPE, text=True)
    url = "http://" + backend.stdout.readline().split()[-1]
    socket_path = tmp / f"ev-{n}.sock"
    flags = ["--events-socket", str(socket_path)] if live else ["--no-results-layout", "--no-events"]
    metrics = f"127.0.0.1:{free_port()}"
    base = "http://" + metrics
    runner = subprocess.Popen([str(build / "agent" / "runner"), "--backend-url", url, "--check-interval", "0.05",
                               "--service", str(service), "--work-dir", str(work), "--allow-schemes", "file",
                               "--logger-level", "warning", "--metrics-address", metrics, *flags])
    subscriber = None
    events = 0
    try:
        wait_for(lambda: ready(base), "the agent's /healthz")
        if live:
            # Its output goes to a file: a pipe nobody reads would make it a stuck subscriber.
            subscriber = subprocess.Popen([str(build / "agent" / "runner"), "subscribe", "--socket", str(socket_path)],
                                          stdout=open(tmp / f"events-{n}.jsonl", "wb"))
            wait_for(lambda: metric(base, "proctor_event_subscribers") == 1, "the subscriber")
        start = time.monotonic()
        http(url + "/admin/tasks", [{"id": f"t{i}", "repositoryUrl": f"file://{repo}"} for i in range(tasks)])
        # Every 20 ms: more often would take CPU from the rounds (2 CPUs here), for a
        # quantization of 1 ms a task that both modes share. A task may take its service's
        # whole timeout (300 s).
        wait_for(lambda: http(url + "/admin/stats")["results"] >= tasks, "the results", timeout=300 * tasks,
                 interval=0.02)
        results_at = time.monotonic()
        if live:
            wait_for(lambda: layouts_done(work / "results", tasks), "the results layouts", interval=0.02)
        done_at = time.monotonic()
        wall = done_at - start
        layout_lag = done_at - results_at
        dropped = metric(base, "proctor_event_subscribers_dropped_total") if live else 0
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
        if subscriber:
            subscriber.wait(timeout=30)
            events = (tmp / f"events-{n}.jsonl").read_bytes().count(b"\n")
        backend.send_signal(signal.SIGTERM)
        backend.wait(timeout=10)
    if dropped:
        raise SystemExit("the subscriber was dropped: the stream's figures would mean nothing")
    return wall / tasks, events, layout_lag


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=pathlib.Path)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=pathlib.Path, default=None,
                        help="where the work folders go (default: the system's temporary folder)")

    parser.add_argument("--max-creation-us", type=float, default=100,
                        help="wait (up to 7 minutes) until creating a file takes at most this long")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="proctor-live-", dir=args.dir) as tmp:
        tmp = pathlib.Path(tmp)
        # A journal-less ext4 is slow to hand out inodes for up to 6 minutes after many
        # deletions (a previous run's cleanup): that would be measured as the layout's cost.
        creation_before = file_creation_us(tmp)
        settle_deadline = time.monotonic() + 420
        while creation_before > args.max_creation_us and time.monotonic() < settle_deadline:
            print(f"creating a file takes {creation_before:.0f} us here: waiting for the filesystem to settle",
                  flush=True)
            time.sleep(20)
            creation_before = file_creation_us(tmp)
        repo = make_repo(tmp)
        service = tmp / "service"
        service.mkdir()
        tests = "".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n\n" for i in range(args.cases))
        (service / "test_many.py").write_text(tests)
        (service / "service.yaml").write_text(
            "cmd: /usr/bin/python3 -m pytest -q -p no:cacheprovider --junit-xml=${junit_xml} test_many.py\n"
            "timeout: 300\n")
        per_task = {True: [], False: []}
        lags = []
        expected_events = args.tasks * (2 * args.cases + 7)
        # A warm-up round, not counted: the first pytest runs read everything from disk.
        run_round(args.build_dir, tmp, repo, service, 3, False, 0)
        n = 1
        for r in range(args.rounds):
            # Alternate which mode goes first, so drift on the machine hits both alike.
            for live in ((True, False) if r % 2 == 0 else (False, True)):
                seconds, seen, lag = run_round(args.build_dir, tmp, repo, service, args.tasks, live, n)
                n += 1
                per_task[live].append(seconds)
                if live:
                    lags.append(lag)
                    if seen != expected_events:
                        raise SystemExit(f"the subscriber got {seen} events, not {expected_events}")
                print(f"round {r + 1} {'on ' if live else 'off'}: {seconds * 1000:.1f} ms per task"
                      + (f" ({seen} events to the subscriber; layouts done {lag * 1000:.0f} ms after the last result)"
                         if live else ""), flush=True)
        try:
            creation_after = file_creation_us(tmp)
        except OSError as e:  # a full disk, say: the rounds' figures still stand
            print(f"file creation not timed after the rounds: {e}")
            creation_after = float("nan")

    on = statistics.median(per_task[True])
    off = statistics.median(per_task[False])
    # Each round runs both modes back to back: their difference cancels the machine's
    # drift from round to round, which on a small VM is larger than what is measured.
    differences = [a - b for a, b in zip(per_task[True], per_task[False])]
    paired = statistics.median(differences)
    # The mean's standard error says whether the rounds were enough to tell the figure
    # from the target (two of them either side is a 95% interval).
    mean = statistics.mean(differences)
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    print(f"\n{args.tasks} tasks x {args.cases} pytest cases, {args.rounds} rounds, medians:")
    print(f"  layout + events on : {on * 1000:.1f} ms per task (layouts done {statistics.median(lags) * 1000:.0f} ms "
          "after the last result, counted in)")
    print(f"  both off           : {off * 1000:.1f} ms per task")
    print(f"  added              : {(on - off) * 1000:+.1f} ms per task = {(on / off - 1) * 100:+.2f}% "
          f"(target < 2%)")
    print(f"  paired (per round) : {paired * 1000:+.1f} ms per task = {paired / off * 100:+.2f}% (median of on - off)")
    print(f"  paired, mean       : {mean * 1000:+.1f} ms per task (standard error {error * 1000:.1f}) = "
          f"{mean / off * 100:+.2f}% +- {error / off * 100:.2f}%")
    print(f"  creating a file here took {creation_before:.0f} us before the rounds, {creation_after:.0f} us after "
          "(tens of us is normal; hundreds: a journal-less ext4 after many deletions, see bench/README.md)")

if __name__ == "__main__":
    main()
