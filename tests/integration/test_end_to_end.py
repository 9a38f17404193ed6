"""One task at a time through the real agent: poll mock_backend, clone a git submission,
run a pytest service, post the payload. Checked field by field from the recorded POST."""

import re
import signal
import uuid

from conftest import (PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_BUGGY, PYTHON_SUBMISSION_GOOD,
                      wait_for_line, wait_until)


def test_passing_task_flat_dialect(backend, make_repo, make_service, run_runner):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    task_id = str(uuid.uuid4())
    b = backend([{"id": task_id, "status": "AVAILABLE", "repositoryUrl": f"file://{repo}", "branch": "main",
                  "laboratoryNumber": 1, "connectedTests": []}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 0, done.stderr
    [payload] = b.results()
    assert payload["id"] == task_id
    assert payload["isPassed"] is True
    assert payload["isError"] is False
    assert payload["errorDetails"] == ""
    assert isinstance(payload["duration"], int) and payload["duration"] >= 0
    cases = {case["name"]: case for case in payload["testResults"]}
    assert set(cases) == {"test_calc::test_add", "test_calc::test_divide", "test_calc::test_divide_by_zero"}
    for case in cases.values():
        assert case["isPassed"] is True
        assert case["description"] == ""
        assert isinstance(case["duration"], int)
        assert isinstance(case["memoryUsed"], int) and case["memoryUsed"] > 1000  # KiB of a python tree
    requests = [r for r in b.get("/admin/requests") if r["method"] == "POST"]
    assert requests[0]["user_agent"].startswith("proctor-runner/")
    assert requests[0]["runner_id"].endswith("-0")


def test_failing_task_nested_dialect(backend, make_repo, make_service, run_runner):
    repo = make_repo(PYTHON_SUBMISSION_BUGGY)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = backend([{"attempt": 21, "repositoryUrl": f"file://{repo}", "branch": "main", "laboratoryNumber": [1, 2],
                  "connectedTests": ["test_calc"]}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 1, done.stderr  # tests failed
    [payload] = b.results()
    assert set(payload) == {"attempt", "testResults"}
    assert payload["attempt"] == 21
    results = payload["testResults"]
    assert results["isPassed"] is False
    assert results["isError"] is False
    assert results["errorDetails"] == ""
    assert re.fullmatch(r"\d+\.\d{3}", results["duration"])
    cases = {case["name"]: case for case in results["testCases"]}
    assert cases["test_calc::test_add"]["isPassed"] is False
    description = cases["test_calc::test_add"]["description"]
    assert "assert -1 == 5" in description  # pytest's message
    assert "\n\n" in description and "def test_add" in description  # then the traceback
    assert cases["test_calc::test_divide"]["isPassed"] is True
    assert cases["test_calc::test_divide"]["description"] == ""
    for case in cases.values():
        assert re.fullmatch(r"\d+\.\d{3}", case["duration"])


def test_task_fields_reach_the_service(backend, make_repo, make_service, run_runner):
    repo = make_repo({"README": "x\n"}, branch="lab2")
    service = make_service("""
        cmd: /usr/bin/python3 probe.py ${laboratory_number} ${connected_tests} ${junit_xml}
        """, {"probe.py": """
        import json, os, sys
        lab, tests, junit = sys.argv[1:4]
        env = {k: v for k, v in os.environ.items() if k.startswith("OT_")}
        inputs = json.load(open("input.json"))
        checks = {
            "lab_arg": lab == "1,2", "tests_arg": tests == "test_a,test b",
            "env_lab": env.get("OT_LABORATORY_NUMBER") == "1,2",
            "env_branch": env.get("OT_BRANCH") == "lab2",
            "env_task": env.get("OT_TASK_ID") == "77",
            "repo_checked_out": os.path.exists(os.path.join(env["OT_REPOSITORY_DIR"], "README")),
            "input_json": inputs["connected_tests"] == "test_a,test b",
            "clean_env": "PROCTOR_SECRET" not in os.environ,
            "stdin_closed": sys.stdin.read() == "",
        }
        cases = "".join(f'<testcase classname="tests.probe" name="{k}">' + ("" if ok else "<failure message='no'/>")
                        + "</testcase>" for k, ok in checks.items())
        open(junit, "w").write(f"<testsuite name='probe'>{cases}</testsuite>")
        """})
    b = backend([{"id": 77, "repositoryUrl": f"file://{repo}", "branch": "lab2", "laboratoryNumber": [1, 2],
                  "connectedTests": ["test_a", "test b"]}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    [payload] = b.results()
    failed = [c["name"] for c in payload["testResults"] if not c["isPassed"]]
    assert failed == [], payload
    assert payload["id"] == 77 and done.returncode == 0


def test_daemon_runs_queued_tasks_on_two_slots_then_stops_on_sigterm(backend, make_repo, make_service, start_runner):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    tasks = [{"id": n, "repositoryUrl": f"file://{repo}"} for n in range(1, 5)]
    b = backend(tasks)

    runner = start_runner("--backend-url", b.url, "--concurrent", "2", "--service", str(service))
    delivered = 0
    lines = []
    while delivered < 4:
        lines += wait_for_line(runner.stderr, "delivered")
        delivered = sum("delivered" in line for line in lines)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=30)

    assert runner.returncode == 0
    results = b.results()
    assert sorted(r["id"] for r in results) == [1, 2, 3, 4]
    assert all(r["isPassed"] for r in results)
    stats = b.get("/admin/stats")
    assert stats["duplicate_results"] == 0
    assert len(stats["results_by_runner"]) == 2  # both slots took work
    assert any("reused" in line for line in lines)  # a slot's second task reused its clone


def test_every_no_task_answer_keeps_the_agent_polling(backend, make_repo, make_service, start_runner):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    for mode in ("unavailable", "204", "404", "empty"):
        b = backend([], "--empty-answer", mode)
        runner = start_runner("--backend-url", b.url, "--once", "--service", str(service))

        def polled_twice():
            assert runner.poll() is None, runner.stderr.read()
            # The agent's polls, not this test's own reads of the request log.
            return sum(r["method"] == "GET" and r["target"].startswith("/api/")
                       for r in b.get("/admin/requests")) >= 2

        wait_until(polled_twice, what=f"the agent to be told 'no task' ({mode}) at least twice")
        b.post("/admin/tasks", {"id": mode, "repositoryUrl": f"file://{repo}"})
        assert runner.wait(timeout=60) == 0, mode
        assert [r["id"] for r in b.results()] == [mode]
