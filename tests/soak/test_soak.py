"""The soak (issue 5): 1,000 tasks through 4 slots against mock_backend with 20% of the
task and result requests faulted (500, 429 with Retry-After, answers slower than the
agent's request timeout, bodies cut mid-way, garbage, closed connections, tasks handed
out twice) and the agent killed with SIGKILL twice along the way. Every task's result
must be recorded exactly once (the mock counts duplicates by identity), and no process
of any service may survive. It fails at once if the agent dies, and if no new result comes
for SOAK_STALL seconds (default 60: past the mock's 10 s requeue and the agent's longest
backoff many times over); how long it takes on the whole is a figure, bounded only by
CTest's timeout, since a slower machine is not a fault.

The figures (tasks, faults, restarts, results, duplicates, lost, agent RSS) are printed
and written to soak-figures.json in the build folder."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid


sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from conftest import BUILD_DIR, backend, git_repo, processes_with, runner_args  # noqa: E402,F401

TASKS = int(os.environ.get("SOAK_TASKS", "1000"))
SLOTS = 4
CHAOS = "0.2"
STALL = float(os.environ.get("SOAK_STALL", "60"))


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_soak_1000_tasks_with_faults_and_two_kills(tmp_path, backend):
    # The mock backend with 20% of the task and result requests faulted (stopped by the fixture).
    mock = backend([], "--log-level", "warn", "--chaos", CHAOS, "--chaos-seed", "5", "--slow-ms", "1500",
                   "--retry-after", "1", "--task-timeout", "10")
    marker = uuid.uuid4().int % 900000 + 100000
    repo = git_repo(tmp_path / "repo", {"README": "soak\n"})
    service = tmp_path / "service"
    service.mkdir()
    (service / "service.yaml").write_text("cmd: sh run.sh ${junit_xml}\ntimeout: 60\n")
    # Each run leaves a straggler in its session and one that double-forks out of it: the
    # agent must kill and reap both (unique sleep lengths find them afterwards).
    (service / "run.sh").write_text(
        f"(sleep {marker}1 &) \n"
        f"setsid -f sleep {marker}2\n"
        "printf '<testsuite name=\"soak\"><testcase classname=\"tests.soak\" name=\"a\" time=\"0.001\"/>"
        "<testcase classname=\"tests.soak\" name=\"b\" time=\"0.002\"/></testsuite>' > \"$1\"\n")

    ids = [f"soak-{i}" for i in range(TASKS)]
    mock.post("/admin/tasks", [{"id": task, "repositoryUrl": f"file://{repo}"} for task in ids])

    log = open(tmp_path / "runner.log", "ab")

    def start_agent():
        return subprocess.Popen(
            runner_args(tmp_path, "--backend-url", mock.url, "--service", str(service), "--concurrent", str(SLOTS),
                        "--request-timeout", "1", "--error-backoff", "0.05", "--max-error-backoff", "1",
                        "--logger-level", "warning", "--no-results-layout", "--no-events"),
            stdout=subprocess.DEVNULL, stderr=log)

    def log_tail():
        return "".join((tmp_path / "runner.log").read_text(errors="replace").splitlines(keepends=True)[-40:])

    started = time.monotonic()

    def wait_for_results(count, what):
        # Waits as long as results keep coming: STALL seconds without a new one fail, a slow
        # machine does not. An agent that died (a sanitizer report, a crash) fails at once.
        seen, progressed = -1, time.monotonic()
        while True:
            stats = mock.get("/admin/stats")
            if agent.poll() is not None:
                raise AssertionError(f"the agent exited with {agent.returncode} while waiting for {what}: "
                                     f"{stats}\nits log ends:\n{log_tail()}")
            if stats["distinct_results"] >= count:
                return
            if stats["distinct_results"] > seen:
                seen, progressed = stats["distinct_results"], time.monotonic()
            elif time.monotonic() - progressed >= STALL:
                raise AssertionError(f"no new result for {STALL:g} s while waiting for {what}: {stats}\n"
                                     f"the agent's log ends:\n{log_tail()}")
            time.sleep(0.05)  # between polls of the mock

    agent = start_agent()
    restarts = 0
    phases = {}  # seconds from the start to each kill: a restart that runs slower shows here
    rss_start = rss_end = 0
    try:
        for kill_at in (TASKS * 3 // 10, TASKS * 65 // 100):
            wait_for_results(kill_at, f"{kill_at} results")
            phases[f"killed_at_{kill_at}"] = round(time.monotonic() - started, 1)
            agent.kill()  # SIGKILL, in the middle of whatever it was doing
            agent.wait()
            agent = start_agent()
            restarts += 1
        wait_for_results(min(TASKS // 10 + TASKS * 65 // 100, TASKS), "the agent to settle")
        rss_start = rss_kib(agent.pid)
        wait_for_results(TASKS, "every result")
        rss_end = rss_kib(agent.pid)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    elapsed = time.monotonic() - started

    stats = mock.get("/admin/stats")
    recorded = [json.loads(line) for line in mock.results_file.read_text().splitlines()]
    per_id = {}
    for result in recorded:
        per_id[result["id"]] = per_id.get(result["id"], 0) + 1
    figures = {
        "tasks": TASKS, "slots": SLOTS, "chaos_share": float(CHAOS), "faults_injected": sum(stats["faults"].values()),
        "faults_by_kind": stats["faults"], "restarts_after_kill_9": restarts, "results_recorded": len(recorded),
        "distinct_results": stats["distinct_results"], "duplicates": stats["duplicate_results"],
        "lost": len(set(ids) - set(per_id)), "replayed_deliveries": stats["replayed_deliveries"],
        "tasks_requeued": stats.get("tasks_requeued", 0), "tasks_duplicated": stats["tasks_duplicated"],
        "errored_results": sum(1 for r in recorded if r["isError"]),
        "agent_rss_kib_start": rss_start, "agent_rss_kib_end": rss_end, "phase_seconds": phases,
        "seconds": round(elapsed, 1)}
    print(json.dumps(figures, indent=1))
    (BUILD_DIR / "soak-figures.json").write_text(json.dumps(figures, indent=1) + "\n")

    assert set(per_id) == set(ids)  # every task's result was recorded...
    assert all(count == 1 for count in per_id.values())  # ...exactly once
    assert stats["duplicate_results"] == 0
    assert processes_with(f"sleep {marker}1") == [] and processes_with(f"sleep {marker}2") == []
    assert list((tmp_path / "work" / "journal" / "held").glob("*.json")) == []
    assert list((tmp_path / "work" / "spool" / "pending").glob("*.json")) == []
