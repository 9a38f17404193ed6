#!/usr/bin/env python3
"""Schedule jitter of `runner orchestrate`: the spread between each run's planned start
and its actual start, over RUNS runs of one event every INTERVAL seconds (issue 6's
figure: 300 runs at 100 ms, p99 under 5 ms). The agent records each run's start delay in
its results layout (the run's output.json, start_delay_ms): the time from the planned
instant to the moment the run's process is running (forked and exec'd), on the monotonic
clock.

Side by side, in the same run: a Python loop on the same grid (sleep until the planned
instant, then start the same process, stamped once it runs), the way a script-based
orchestrator would do it.

usage: orchestration_jitter.py BUILD_DIR [--runs 300] [--interval 0.1]"""

import argparse
import json
import math
import pathlib
import statistics
import subprocess
import tempfile
import time


def percentile(values, q):
    """The nearest-rank percentile: the smallest value with at least q of them at or below it."""
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def describe(name, delays_ms):
    print(f"  {name:<28} runs {len(delays_ms):4d}  p50 {percentile(delays_ms, 0.50):7.3f} ms  "
          f"p99 {percentile(delays_ms, 0.99):7.3f} ms  max {max(delays_ms):7.3f} ms  "
          f"mean {statistics.mean(delays_ms):7.3f} ms")


def agent_delays(build, tmp, runs, interval):
    services = tmp / "services"
    (services / "tick").mkdir(parents=True)
    (services / "tick" / "service.yaml").write_text("cmd: true\n")
    description = tmp / "jitter.json"
    # Ticks at 0 (startup), interval, ... ; the end half an interval after the last one.
    total_seconds = (runs - 0.5) * interval
    description.write_text(json.dumps({"test_name": "jitter", "total_hours": total_seconds / 3600,
                                       "events": [{"name": "tick", "interval_sec": interval}]}))
    done = subprocess.run([str(build / "agent" / "runner"), "--work-dir", str(tmp / "work"), "--services",
                           str(services), "--logger-level", "warning", "orchestrate", str(description)],
                          capture_output=True, text=True, timeout=total_seconds + 120)
    if done.returncode != 0:
        raise SystemExit(f"runner orchestrate failed ({done.returncode}):\n{done.stderr}")
    layout = tmp / "work" / "results" / "jitter"
    tests = json.loads((layout / "tests.json").read_text())
    delays = []
    for record in tests["test_records"]:
        if record["testname"] == "service":
            continue
        output = json.loads((layout / record["testname"] / "output.json").read_text())
        if "start_delay_ms" in output:
            delays.append(output["start_delay_ms"])
    return delays


def python_loop_delays(runs, interval):
    start = time.monotonic()
    delays = []
    running = None
    for k in range(runs):
        planned = start + k * interval
        while (now := time.monotonic()) < planned:
            time.sleep(planned - now)
        if running is not None:
            running.wait()
        # The same command as the agent's (/bin/sh -c), stamped as the agent stamps it:
        # once the process is running (Popen returns after its exec).
        running = subprocess.Popen(["/bin/sh", "-c", "true"])
        delays.append((time.monotonic() - planned) * 1000)
    running.wait()
    return delays


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=pathlib.Path)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="proctor-jitter-") as tmp:
        agent = agent_delays(args.build_dir, pathlib.Path(tmp), args.runs, args.interval)
    python = python_loop_delays(args.runs, args.interval)
    print(f"\n{args.runs} runs of `true` every {args.interval * 1000:.0f} ms, start delay (actual - planned):")
    describe("runner orchestrate", agent)
    describe("Python loop, same grid", python)
    print(f"  target: p99 under 5 ms -> {'met' if percentile(agent, 0.99) < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
