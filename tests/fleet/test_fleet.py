"""The fleet (issue 7, SPEC §9): 8 agents with 2 slots each poll one mock_backend holding
2,000 tasks of a service that does next to nothing. Every task must run exactly once (the
service appends the task's pid to a shared log) and every result must arrive once; the
mock's per-agent counts (by X-Runner-Id) show that each agent took and answered its share.

bench/fleet_throughput.py measures tasks per second for 1, 2, 4 and 8 agents."""

import collections
import os
import pathlib
import signal
import subprocess
import sys


sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "integration"))
from conftest import RUNNER, backend, git_repo, wait_until  # noqa: E402,F401

TASKS = int(os.environ.get("FLEET_TASKS", "2000"))
AGENTS = 8
SLOTS = 2
DEADLINE = float(os.environ.get("FLEET_DEADLINE", "400"))


def make_fleet_fixtures(tmp_path):
    """A one-file git repository and a service that logs the task's pid and writes a report."""
    repo = git_repo(tmp_path / "repo", {"README": "fleet\n"})
    service = tmp_path / "service"
    service.mkdir()
    runs = tmp_path / "runs.log"
    (service / "service.yaml").write_text("cmd: sh run.sh ${pid} ${junit_xml}\ntimeout: 60\n")
    # One short line per run, appended (O_APPEND: lines from concurrent runs never mix).
    (service / "run.sh").write_text(
        f"echo \"$1\" >> {runs}\n"
        "printf '<testsuite name=\"fleet\"><testcase classname=\"tests.fleet\" name=\"a\" time=\"0.001\"/>"
        "</testsuite>' > \"$2\"\n")
    return repo, service, runs


def start_agents(tmp_path, url, service, count, slots):
    agents = []
    for n in range(count):
        log = open(tmp_path / f"agent{n}.log", "ab")
        agents.append(subprocess.Popen(
            [str(RUNNER), "--backend-url", url, "--service", str(service), "--work-dir", str(tmp_path / f"work{n}"),
             "--runner-id", f"agent{n}", "--allow-schemes", "file", "--concurrent", str(slots),
             "--check-interval", "0.05", "--kill-grace", "1", "--logger-level", "warning",
             "--no-results-layout", "--no-events"],
            stdout=subprocess.DEVNULL, stderr=log))
    return agents


def stop_agents(agents):
    """SIGTERM to every agent still running; returns their exit codes. One that does not end
    within 60 s is killed (its code says so), so no agent outlives the test or the bench."""
    for agent in agents:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
    codes = []
    for agent in agents:
        try:
            codes.append(agent.wait(timeout=60))
        except subprocess.TimeoutExpired:
            agent.kill()
            codes.append(agent.wait())
    return codes


def test_eight_agents_run_2000_tasks_each_exactly_once(tmp_path, backend):
    mock = backend([], "--log-level", "warn")
    repo, service, runs = make_fleet_fixtures(tmp_path)
    ids = [f"fleet-{i}" for i in range(TASKS)]
    mock.post("/admin/tasks", [{"id": task, "repositoryUrl": f"file://{repo}"} for task in ids])
    agents = start_agents(tmp_path, mock.url, service, AGENTS, SLOTS)
    try:
        wait_until(lambda: mock.get("/admin/stats")["results"] >= TASKS, timeout=DEADLINE,
                   what=lambda: f"{TASKS} results: {mock.get('/admin/stats')}")
    finally:
        codes = stop_agents(agents)
    assert codes == [0] * AGENTS

    stats = mock.get("/admin/stats")
    assert stats["tasks_served"] == TASKS
    assert stats["results"] == TASKS and stats["duplicate_results"] == 0
    assert sorted(result["id"] for result in mock.results()) == sorted(ids)
    assert all(result["isPassed"] for result in mock.results())

    ran = collections.Counter(runs.read_text().split())
    assert sorted(ran) == sorted(ids), "a task that never ran"
    assert [task for task, times in ran.items() if times != 1] == [], "a task that ran twice"

    by_agent = stats["by_agent"]
    assert sorted(by_agent) == sorted(f"agent{n}" for n in range(AGENTS))
    for name, counts in by_agent.items():
        assert counts["tasks"] > 0, f"{name} took no task: {by_agent}"
        assert counts["tasks"] == counts["results"], f"{name} took and answered different counts: {by_agent}"
    assert sum(counts["tasks"] for counts in by_agent.values()) == TASKS
    shares = sorted(counts["tasks"] for counts in by_agent.values())
    print(f"\nfleet: {TASKS} tasks over {AGENTS} agents x {SLOTS} slots; tasks per agent {shares}")
