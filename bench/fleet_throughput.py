#!/usr/bin/env python3
"""Fleet throughput (issue 7): tasks per second through 1, 2, 4 and 8 agents of 2 slots
each, polling one mock_backend, with the fleet test's near no-op service (it logs the
task and writes a one-case report). Each round gets a fresh backend, fresh work folders
and the same number of tasks; the clock runs from the agents' start to the last result.

    /usr/bin/python3 bench/fleet_throughput.py build [--tasks 1000] [--agents 1,2,4,8]

On 2 cores the agents share the CPU with the services they run and with mock_backend:
the figure is what one host gives, not how a fleet of hosts scales."""

import argparse
import os
import pathlib
import sys
import tempfile
import time

root = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "tests" / "integration"))
sys.path.insert(0, str(root / "tests" / "fleet"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=pathlib.Path)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--agents", default="1,2,4,8")
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    os.environ["PROCTOR_BUILD_DIR"] = str(args.build_dir.resolve())
    import conftest  # noqa: E402  (reads PROCTOR_BUILD_DIR)
    from test_fleet import make_fleet_fixtures, start_agents, stop_agents  # noqa: E402

    print(f"{args.tasks} tasks, {args.slots} slots per agent, {os.cpu_count()} CPUs")
    print(f"{'agents':>6} {'slots':>5} {'seconds':>8} {'tasks/s':>8} {'per agent':>24}")
    for count in [int(n) for n in args.agents.split(",")]:
        with tempfile.TemporaryDirectory(prefix="proctor-fleet-") as tmp:
            tmp = pathlib.Path(tmp)
            repo, service, _ = make_fleet_fixtures(tmp)
            backend = conftest.Backend(tmp, [], ["--log-level", "warn"])
            agents = []
            try:
                backend.post("/admin/tasks", [{"id": f"t{i}", "repositoryUrl": f"file://{repo}"}
                                              for i in range(args.tasks)])
                started = time.monotonic()
                agents = start_agents(tmp, backend.url, service, count, args.slots)
                conftest.wait_until(lambda: backend.get("/admin/stats")["results"] >= args.tasks, timeout=1800,
                                    what="every result")
                elapsed = time.monotonic() - started
                stop_agents(agents)
                stats = backend.get("/admin/stats")
                assert stats["duplicate_results"] == 0 and stats["results"] == args.tasks, stats
                shares = sorted(v["tasks"] for v in stats["by_agent"].values())
            finally:
                stop_agents(agents)  # also when a round failed: no agent outlives the bench
                backend.stop()
        print(f"{count:>6} {count * args.slots:>5} {elapsed:>8.2f} {args.tasks / elapsed:>8.1f} {str(shares):>24}")


if __name__ == "__main__":
    main()
