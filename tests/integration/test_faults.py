"""What goes wrong: hanging services, malformed tasks, unreachable backends and
repositories, broken services and reports, shutdown while a task runs."""

import json
import signal
import uuid

from conftest import (PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_GOOD, processes_with,
                      wait_for_line)


def test_hanging_service_and_its_children_are_killed_at_the_timeout(backend, make_repo, make_service, run_runner):
    n = uuid.uuid4().int % 900000 + 100000  # unique sleep lengths find this test's processes
    repo = make_repo({"README": "x\n"})
    service = make_service(f"""
        cmd: sh hang.sh
        timeout: 2
        """, {"hang.sh": f"""
        # Children in the group, a grandchild in a subshell, one that ignores SIGTERM.
        sleep {n}1 &
        (sleep {n}2 &) &
        sh -c 'trap "" TERM; sleep {n}3; while true; do sleep 1; done' &
        echo "hanging with children"
        wait
        """})
    b = backend([{"id": "hang", "repositoryUrl": f"file://{repo}"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 3
    [payload] = b.results()
    assert payload["isError"] is True and payload["isPassed"] is False
    assert "timed out after 2 s" in payload["errorDetails"]
    assert "hanging with children" in payload["errorDetails"]  # the output tail follows
    for k in (1, 2, 3):
        assert processes_with(f"sleep {n}{k}") == []


def test_malformed_task_with_identity_gets_an_error_payload(backend, run_runner):
    b = backend([{"id": "no-url", "branch": "main"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    [payload] = b.results()
    assert payload["id"] == "no-url"
    assert payload["isError"] is True
    assert "repositoryUrl" in payload["errorDetails"]
    assert "malformed task" in done.stderr


def test_task_that_is_not_json_is_logged_raw_and_not_run(backend, run_runner):
    b = backend([])
    b.post("/admin/raw-task", b"{this is not json at all")

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    assert "not valid JSON" in done.stderr
    assert "{this is not json at all" in done.stderr  # the raw body is in the log
    assert b.results() == []


def test_wrongly_typed_fields_are_refused_with_the_field_named(backend, run_runner):
    b = backend([{"attempt": 5, "repositoryUrl": "https://example.invalid/x.git", "laboratoryNumber": "one"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    [payload] = b.results()
    assert payload["attempt"] == 5
    assert "laboratoryNumber" in payload["testResults"]["errorDetails"]
    assert done.returncode == 2


def test_once_against_a_backend_that_is_not_there_exits_3(run_runner):
    done = run_runner("--backend-url", "http://127.0.0.1:1", "--once", "--service", "/nonexistent", timeout=30)

    assert done.returncode == 3
    assert "cannot reach the backend" in done.stderr


def test_daemon_keeps_retrying_a_missing_backend_and_stops_on_sigterm(start_runner):
    runner = start_runner("--backend-url", "http://127.0.0.1:1", "--service", "/nonexistent")
    wait_for_line(runner.stderr, "cannot reach the backend")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0


def test_unreachable_repository_is_an_error_payload(backend, make_service, run_runner, tmp_path):
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = backend([{"id": "gone", "repositoryUrl": f"file://{tmp_path}/does-not-exist"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 3
    [payload] = b.results()
    assert payload["isError"] is True
    assert payload["errorDetails"].startswith("Fetching the submission failed")


def test_scheme_not_allowed_is_refused_before_fetching(backend, make_repo, make_service, run_runner, tmp_path):
    repo = make_repo({"README": "x\n"})
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = backend([{"id": "local", "repositoryUrl": str(repo)}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service), "--allow-schemes", "https")

    [payload] = b.results()
    assert "scheme 'file' is not allowed" in payload["errorDetails"]
    assert done.returncode == 3
    assert not (tmp_path / "work" / "slots" / "0" / "repos" / "git").exists() or \
        not any((tmp_path / "work" / "slots" / "0" / "repos" / "git").iterdir())


def test_bad_exit_code_without_report_is_an_error(backend, make_repo, make_service, run_runner):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: echo "build exploded" >&2; exit 7
        """)
    b = backend([{"id": "boom", "repositoryUrl": f"file://{repo}"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    [payload] = b.results()
    assert payload["isError"] is True
    assert "exited with code 7, which is not in valid_exit_codes [0]" in payload["errorDetails"]
    assert payload["errorDetails"].endswith("build exploded")
    assert done.returncode == 3


def test_no_report_and_unreadable_report_are_errors(backend, make_repo, make_service, run_runner):
    repo = make_repo({"README": "x\n"})
    silent = make_service("cmd: 'true'\n")
    garbled = make_service("cmd: echo '<testsuite><testcase name=' > ${junit_xml}\n")
    b = backend([{"id": "silent", "repositoryUrl": f"file://{repo}"}])
    run_runner("--backend-url", b.url, "--once", "--service", str(silent))
    b.post("/admin/tasks", {"id": "garbled", "repositoryUrl": f"file://{repo}"})
    run_runner("--backend-url", b.url, "--once", "--service", str(garbled))

    silent_payload, garbled_payload = b.results()
    assert "wrote no report" in silent_payload["errorDetails"]
    assert "report is unreadable" in garbled_payload["errorDetails"]


def start_long_task(backend, make_repo, make_service, start_runner, grace):
    """A daemon running task "long", whose service sleeps `n` seconds: (backend, runner, n)
    once the service is starting."""
    repo = make_repo({"README": "x\n"})
    n = uuid.uuid4().int % 900000 + 100000  # a unique sleep finds this test's process
    service = make_service(f"""
        cmd: exec sleep {n}
        """)
    b = backend([{"id": "long", "repositoryUrl": f"file://{repo}"}])
    runner = start_runner("--backend-url", b.url, "--service", str(service), "--shutdown-grace", str(grace))
    wait_for_line(runner.stderr, "running service")
    return b, runner, n


def test_sigterm_during_a_task_posts_it_as_errored_after_the_grace(backend, make_repo, make_service, start_runner):
    b, runner, n = start_long_task(backend, make_repo, make_service, start_runner, grace=1)
    runner.send_signal(signal.SIGTERM)

    assert runner.wait(timeout=30) == 0
    [payload] = b.results()
    assert payload["isError"] is True
    assert "agent shut down" in payload["errorDetails"]
    assert processes_with(f"sleep {n}") == []


def test_result_is_retried_until_the_backend_takes_it(backend, make_repo, make_service, run_runner):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = backend([{"id": "retry", "repositoryUrl": f"file://{repo}"}], "--fault", "post:503:2")

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in b.results()] == ["retry"]
    posts = [r for r in b.get("/admin/requests") if r["method"] == "POST" and "result" in r["target"]]
    assert len(posts) == 3


def test_second_signal_stops_at_once_without_waiting_for_the_grace(backend, make_repo, make_service, start_runner,
                                                                   tmp_path):
    b, runner, n = start_long_task(backend, make_repo, make_service, start_runner, grace=600)
    runner.send_signal(signal.SIGTERM)
    wait_for_line(runner.stderr, "no new tasks")
    runner.send_signal(signal.SIGTERM)

    assert runner.wait(timeout=30) == 0  # far less than the 600 s grace
    assert processes_with(f"sleep {n}") == []
    # Stopping at once means not waiting for the backend either: the errored payload is
    # in the spool, for the next start to deliver.
    [pending] = (tmp_path / "work" / "spool" / "pending").glob("*.json")
    payload = json.loads(pending.read_text())
    assert payload["id"] == "long"
    assert "agent shut down" in payload["errorDetails"]


def test_a_task_taken_by_a_poll_in_flight_at_sigterm_is_answered(backend, make_repo, make_service, start_runner):
    repo = make_repo({"README": "x\n"})
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    # The backend hands out the task 1.5 s after being asked: SIGTERM comes in between.
    b = backend([{"id": "in-flight", "repositoryUrl": f"file://{repo}"}], "--fault", "get:slow=1500")
    runner = start_runner("--backend-url", b.url, "--service", str(service))
    wait_for_line(runner.stderr, "slot 0: started")  # its first poll is being sent
    runner.send_signal(signal.SIGTERM)

    assert runner.wait(timeout=30) == 0
    [payload] = b.results()
    assert payload["id"] == "in-flight"
    assert payload["isError"] is True
    assert "agent shut down before the task ran" in payload["errorDetails"]


def test_a_final_refusal_keeps_the_payload_in_rejected_with_the_answer(backend, make_repo, make_service, run_runner,
                                                                       tmp_path):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = backend([{"id": "refused", "repositoryUrl": f"file://{repo}"}], "--fault", "post:400")

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert "rejected the result of task refused (HTTP 400)" in done.stderr
    rejected = tmp_path / "work" / "spool" / "rejected"
    [payload_file] = rejected.glob("*.json")
    assert json.loads(payload_file.read_text())["id"] == "refused"
    assert (rejected / (payload_file.name + ".answer")).read_text().startswith("HTTP 400")
    assert list((tmp_path / "work" / "spool" / "pending").glob("*.json")) == []
    posts = [r for r in b.get("/admin/requests") if r["method"] == "POST" and "result" in r["target"]]
    assert len(posts) == 1  # a 400 is final: no retry


def test_an_undelivered_result_survives_a_restart_and_is_delivered_once(backend, make_repo, make_service,
                                                                        start_runner, run_runner, tmp_path):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    broken = backend([{"id": "kept", "repositoryUrl": f"file://{repo}"}], "--fault", "post:close:1000")
    runner = start_runner("--backend-url", broken.url, "--service", str(service), "--shutdown-grace", "0")
    wait_for_line(runner.stderr, "posting the result of task kept failed")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0
    [pending] = (tmp_path / "work" / "spool" / "pending").glob("*.json")
    assert json.loads(pending.read_text())["id"] == "kept"

    healthy = backend([])  # the backend is back (empty): the next start delivers the spool
    again = start_runner("--backend-url", healthy.url, "--service", str(service))
    wait_for_line(again.stderr, "result of task")
    again.send_signal(signal.SIGTERM)
    code = again.wait(timeout=30)
    assert code == 0, again.stderr.read()

    assert [r["id"] for r in healthy.results()] == ["kept"]
    assert healthy.get("/admin/stats")["duplicate_results"] == 0
    assert list((tmp_path / "work" / "spool" / "pending").glob("*.json")) == []
