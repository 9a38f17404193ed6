"""The soak (issue 5): 1,000 tasks through 4 slots against mock_backend with 20% of the
task and result requests faulted (500, 429 with Retry-After, answers slower than the
agent's request timeout, bodies cut mid-way, garbage, closed connections, tasks handed
out twice) and the agent killed with SIGKILL twice along the way. Every task's result
must be recorded exactly once (the mock counts duplicates by identity), and no process
of any service may survive. Bounded: it fails past SOAK_DEADLINE seconds (default 170).

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

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from conftest import BUILD_DIR, RUNNER, Backend, git_repo, processes_with, wait_until  # noqa: E402

TASKS = int(os.environ.get("SOAK_TASKS", "1000"))
SLOTS = 4
CHAOS = "0.2"
DEADLINE = float(os.environ.get("SOAK_DEADLINE", "170"))


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture
def mock(tmp_path):
    """The mock backend with 20% of the task and result requests faulted; stopped at the end."""
    backend = Backend(tmp_path, [], ["--log-level", "warn", "--chaos", CHAOS, "--chaos-seed", "5",
                                     "--slow-ms", "1500", "--retry-after", "1", "--task-timeout", "10"])
    yield backend
    backend.stop()


def test_soak_1000_tasks_with_faults_and_two_kills(tmp_path, mock):
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
            [str(RUNNER), "--backend-url", mock.url, "--service", str(service), "--work-dir", str(tmp_path / "work"),
             "--allow-schemes", "file", "--concurrent", str(SLOTS), "--check-interval", "0.05",
             "--request-timeout", "1", "--error-backoff", "0.05", "--max-error-backoff", "1",
             "--kill-grace", "1", "--logger-level", "warning", "--no-results-layout", "--no-events"],
            stdout=subprocess.DEVNULL, stderr=log)

    def distinct_results():
        return mock.get("/admin/stats")["distinct_results"]

    started = time.monotonic()
    deadline = started + DEADLINE

    def wait_for_results(count, what):
        wait_until(lambda: distinct_results() >= count, timeout=max(0.0, deadline - time.monotonic()),
                   what=lambda: f"{what} before the soak deadline passed: {mock.get('/admin/stats')}")

    agent = start_agent()
    restarts = 0
    rss_start = rss_end = 0
    try:
        for kill_at in (TASKS * 3 // 10, TASKS * 65 // 100):
            wait_for_results(kill_at, f"{kill_at} results")
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
        "agent_rss_kib_start": rss_start, "agent_rss_kib_end": rss_end, "seconds": round(elapsed, 1)}
    print(json.dumps(figures, indent=1))
    (BUILD_DIR / "soak-figures.json").write_text(json.dumps(figures, indent=1) + "\n")

    assert set(per_id) == set(ids)  # every task's result was recorded...
    assert all(count == 1 for count in per_id.values())  # ...exactly once
    assert stats["duplicate_results"] == 0
    assert processes_with(f"sleep {marker}1") == [] and processes_with(f"sleep {marker}2") == []
    assert list((tmp_path / "work" / "journal" / "held").glob("*.json")) == []
    assert list((tmp_path / "work" / "spool" / "pending").glob("*.json")) == []
