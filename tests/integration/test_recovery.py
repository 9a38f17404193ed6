"""An agent killed with SIGKILL in the middle of a task: the next start kills what the
task left running (even a process that double-forked out of the service's session) and
reports the task as errored, exactly once; a task handed out twice runs once."""

import json
import re
import signal
import uuid

from conftest import processes_with, wait_for_line, wait_until


def escaping_service(make_service, marker_dir, n):
    # The service starts a process that double-forks into a session of its own (setsid -f)
    # and says where it is, then hangs. A unique sleep length finds this test's processes.
    return make_service("""
        cmd: sh hang.sh
        timeout: 600
        """, {"hang.sh": f"""
        setsid -f sh -c 'echo $$ > {marker_dir}/escapee.tmp; mv {marker_dir}/escapee.tmp {marker_dir}/escapee; exec sleep {n}1'
        while [ ! -s {marker_dir}/escapee ]; do sleep 0.01; done
        echo running > {marker_dir}/running
        exec sleep {n}2
        """})


def result_posts(b):
    """The result POSTs the mock backend received, in order."""
    return [r for r in b.get("/admin/requests") if r["method"] == "POST" and "result" in r["target"]]


def test_a_task_running_when_the_agent_is_killed_is_reported_errored_at_the_next_start(
        backend, make_repo, make_service, start_runner, tmp_path):
    n = uuid.uuid4().int % 900000 + 100000
    repo = make_repo({"README": "x\n"})
    service = escaping_service(make_service, tmp_path, n)
    b = backend([{"id": "killed-mid-task", "repositoryUrl": f"file://{repo}"}])
    runner = start_runner("--backend-url", b.url, "--service", str(service))
    wait_for_line(runner.stderr, "running service")

    def service_running():
        assert runner.poll() is None, runner.stderr.read()
        return (tmp_path / "running").exists()

    wait_until(service_running, what="the service to say it is running")
    escapee = int((tmp_path / "escapee").read_text())
    runner.kill()  # SIGKILL: no shutdown, no cleanup
    runner.wait()
    assert escapee in processes_with(f"sleep {n}1")  # nothing stopped it: the agent died
    held = list((tmp_path / "work" / "journal" / "held").glob("*.json"))
    assert len(held) == 1 and json.loads(held[0].read_text())["identity"] == "killed-mid-task"

    again = start_runner("--backend-url", b.url, "--service", str(service))
    lines = wait_for_line(again.stderr, "result of task killed-mid-task delivered")
    text = "".join(lines)
    # The shell, the service's sleep and the escapee (at least those two sleeps).
    killed = re.search(r"killed (\d+) process\(es\) the previous run of the agent left running", text)
    assert killed and int(killed.group(1)) >= 2, text
    assert "never finished: the agent stopped while it ran" in text
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0

    [payload] = b.results()
    assert payload["id"] == "killed-mid-task"
    assert payload["isError"] is True
    assert "The agent stopped" in payload["errorDetails"]
    assert processes_with(f"sleep {n}1") == [] and processes_with(f"sleep {n}2") == []
    assert list((tmp_path / "work" / "journal" / "held").glob("*.json")) == []
    assert b.get("/admin/stats")["duplicate_results"] == 0


def test_a_finished_task_leaves_no_journal_record_and_a_restart_reports_nothing_twice(
        backend, make_repo, make_service, start_runner, run_runner, tmp_path):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: "true"
        valid_exit_codes: [0]
        timeout: 60
        """)
    b = backend([{"id": "done-once", "repositoryUrl": f"file://{repo}"}])
    run_runner("--backend-url", b.url, "--once", "--service", str(service))
    assert list((tmp_path / "work" / "journal" / "held").glob("*.json")) == []
    again = start_runner("--backend-url", b.url, "--service", str(service))
    wait_for_line(again.stderr, "slot 0: started")
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    assert [r["id"] for r in b.results()] == ["done-once"]


def test_a_task_handed_out_again_after_a_restart_is_not_run_twice(backend, make_repo, make_service, run_runner,
                                                                   start_runner, tmp_path):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: "true"
        timeout: 60
        """)
    b = backend([{"id": "twice", "repositoryUrl": f"file://{repo}"}])
    run_runner("--backend-url", b.url, "--once", "--service", str(service))
    b.post("/admin/tasks", [{"id": "twice", "repositoryUrl": f"file://{repo}"}])  # the backend's mistake

    again = start_runner("--backend-url", b.url, "--service", str(service))
    wait_for_line(again.stderr, "handed out task twice again")
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    assert [r["id"] for r in b.results()] == ["twice"]
    assert b.get("/admin/stats")["duplicate_results"] == 0


def test_retry_after_is_honoured_when_posting(backend, make_repo, make_service, run_runner):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: "true"
        timeout: 60
        """)
    # The first POST gets 429 with Retry-After: 2; the back-off alone would wait ~0.05 s.
    b = backend([{"id": "busy", "repositoryUrl": f"file://{repo}"}], "--fault", "post:429", "--retry-after", "2")

    run_runner("--backend-url", b.url, "--once", "--service", str(service), "--error-backoff", "0.05")

    posts = result_posts(b)
    assert len(posts) == 2
    assert posts[1]["time_ms"] - posts[0]["time_ms"] >= 2000
    assert [r["id"] for r in b.results()] == ["busy"]


def test_a_full_spool_stops_the_agent_taking_tasks_and_drops_nothing(backend, make_repo, make_service,
                                                                      start_runner, tmp_path):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: "true"
        timeout: 60
        """)
    # Results are refused with 503 for a long while: the first run leaves its payload in
    # the spool when it stops.
    b = backend([{"id": "spooled-0", "repositoryUrl": f"file://{repo}"}], "--fault", "post:503:100000")
    first = start_runner("--backend-url", b.url, "--service", str(service), "--shutdown-grace", "0")
    wait_for_line(first.stderr, "posting the result of task spooled-0 failed")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    b.post("/admin/tasks", [{"id": f"spooled-{i}", "repositoryUrl": f"file://{repo}"} for i in (1, 2)])
    posts_before = len(result_posts(b))

    # A cap of ~100 bytes: the spool is full with that one payload still undelivered.
    again = start_runner("--backend-url", b.url, "--service", str(service), "--spool-max-mb", "0.0001",
                         "--shutdown-grace", "0",
                         "--error-backoff", "0.05", "--max-error-backoff", "0.2")
    wait_for_line(again.stderr, "taking no new tasks until the backend accepts them (nothing is dropped)")
    # Three delivery attempts of the spooled payload: the agent has gone on running (and
    # would have polled) while full before the backend's counters are read.
    wait_until(lambda: len(result_posts(b)) >= posts_before + 3, what="three result POSTs from the second agent")
    stats = b.get("/admin/stats")
    assert stats["tasks_served"] == 1 and stats["queue"] == 2  # no task taken while full
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    [pending] = (tmp_path / "work" / "spool" / "pending").glob("*.json")
    assert json.loads(pending.read_text())["id"] == "spooled-0"


def test_a_second_agent_on_the_same_work_dir_refuses_to_start(backend, start_runner, run_runner):
    b = backend([])
    first = start_runner("--backend-url", b.url, "--service", "/nonexistent")
    wait_for_line(first.stderr, "slot 0: started")
    second = run_runner("--backend-url", b.url, "--service", "/nonexistent", timeout=30)
    assert second.returncode == 3
    assert "another runner is using the work folder" in second.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
