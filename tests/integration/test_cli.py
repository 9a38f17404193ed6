"""The subcommands that need no backend: convert, exec and verify."""

import json
import signal
import subprocess
import uuid

from conftest import (PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_GOOD, RUNNER, SOURCE_DIR,
                      SYSTEM_PYTHON, processes_with, wait_for_line, wait_until)

PYTEST_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3" time="1.5">
<testcase classname="tests.test_build" name="test_ok" time="0.487"/>
<testcase classname="tests.test_build" name="test_bad" time="1.003">
  <failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2</failure></testcase>
<testcase classname="tests.test_build" name="test_skip" time="0"><skipped message="not today"/></testcase>
</testsuite></testsuites>
"""


def convert(tmp_path, content, *args):
    report = tmp_path / "report.xml"
    report.write_text(content)
    return subprocess.run([str(RUNNER), "convert", str(report), *args], capture_output=True, text=True, timeout=60)


def test_convert_flat(tmp_path):
    done = convert(tmp_path, PYTEST_REPORT)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["isPassed"] is False and payload["isError"] is False
    assert payload["duration"] == 1500
    names = [c["name"] for c in payload["testResults"]]
    assert names == ["test_build::test_ok", "test_build::test_bad", "test_build::test_skip"]
    bad = payload["testResults"][1]
    assert bad["description"] == "assert 1 == 2\n\ndef test_bad():\n>       assert 1 == 2"
    assert bad["duration"] == 1003
    assert "memoryUsed" not in bad  # nothing measured, nothing invented


def test_convert_nested_and_report(tmp_path):
    nested = json.loads(convert(tmp_path, PYTEST_REPORT, "--format", "nested").stdout)
    assert nested["testResults"]["duration"] == "1.500"
    assert nested["testResults"]["testCases"][1]["duration"] == "1.003"
    report = json.loads(convert(tmp_path, PYTEST_REPORT, "--format", "report").stdout)
    assert report["counts"] == {"total": 3, "passed": 1, "failed": 1, "errored": 0, "skipped": 1}


def test_convert_refuses_what_is_not_junit(tmp_path):
    for content in ("<html><body>502</body></html>", "not xml at all", "<testsuite><testcase"):
        done = convert(tmp_path, content)
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1  # one line saying why
        assert done.stderr.startswith("runner convert: ")


def test_convert_missing_file(tmp_path):
    done = subprocess.run([str(RUNNER), "convert", str(tmp_path / "nope.xml")], capture_output=True, text=True)
    assert done.returncode == 2


def test_exec_runs_a_task_file_without_backend(tmp_path, make_repo, make_service):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"attempt": 3, "repositoryUrl": f"file://{repo}"}))

    done = subprocess.run([str(RUNNER), "exec", "--task", str(task), "--service", str(service), "--work-dir",
                           str(tmp_path / "work"), "--allow-schemes", "file"], capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["attempt"] == 3
    assert payload["testResults"]["isPassed"] is True
    assert len(payload["testResults"]["testCases"]) == 3


def test_exec_stops_the_task_on_sigterm_and_prints_its_error_payload(tmp_path, make_repo, make_service):
    marker = f"proctor-exec-{uuid.uuid4().hex}"
    repo = make_repo({"README": "x\n"})
    service = make_service(f'cmd: {SYSTEM_PYTHON} -c "import time; time.sleep(600)" {marker}\n')
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"id": "sig-1", "repositoryUrl": f"file://{repo}"}))
    runner = subprocess.Popen([str(RUNNER), "exec", "--task", str(task), "--service", str(service), "--work-dir",
                               str(tmp_path / "work"), "--allow-schemes", "file", "--kill-grace", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(runner.stderr, "running service")  # logged just before the process starts
        wait_until(lambda: processes_with(marker), what="the service running")
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    # Stopped cleanly by the agent, not killed by the signal.
    assert runner.returncode == 3, err
    payload = json.loads(out)
    assert payload["isError"] is True and "shut down" in payload["errorDetails"], payload
    assert not processes_with(marker)


def test_exec_refuses_a_malformed_task_file(tmp_path):
    task = tmp_path / "task.json"
    task.write_text('{"attempt": "x"}')
    done = subprocess.run([str(RUNNER), "exec", "--task", str(task)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "attempt" in done.stderr


def test_usage_errors_exit_2():
    assert subprocess.run([str(RUNNER), "--concurrent", "0"], capture_output=True).returncode == 2
    assert subprocess.run([str(RUNNER)], capture_output=True).returncode == 2
    version = subprocess.run([str(RUNNER), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "proctor" in version.stdout


# ---- runner verify -----------------------------------------------------------------------

SPECS = SOURCE_DIR / "tests" / "data" / "specs"


def verify(path):
    return subprocess.run([str(RUNNER), "verify", str(path)], capture_output=True, text=True, timeout=60)


def expected_problems(path):
    """The `# expect:` and `# expect-warning:` lines of a corpus file: (severity, line, column, text)."""
    out = []
    for line in path.read_text().splitlines():
        for marker, severity in (("# expect: ", "error"), ("# expect-warning: ", "warning")):
            if line.startswith(marker):
                row, column, text = line[len(marker):].split(":", 2)
                out.append((severity, row, column, text.strip()))
    return out


def assert_reported(path, output, severity, row, column, text):
    """`runner verify` printed PATH:ROW:COLUMN: SEVERITY: ...TEXT... (column `*`: any)."""
    place = f"{path}:{row}:" + ("" if column == "*" else f"{column}:")
    assert any(l.startswith(place) and f": {severity}: " in l and text in l for l in output.splitlines()), \
        (path.name, row, column, text, output)


def test_verify_accepts_every_good_specification():
    files = sorted((SPECS / "good").glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        done = verify(path)
        assert done.returncode == 0, (path.name, done.stdout, done.stderr)
        assert f"{path}: valid " in done.stdout
        for severity, row, column, text in expected_problems(path):
            assert severity == "warning"
            assert_reported(path, done.stdout, severity, row, column, text)


def test_verify_reports_every_problem_of_each_bad_specification_with_its_place():
    files = sorted((SPECS / "bad").glob("*.yaml"))
    assert len(files) >= 15
    for path in files:
        done = verify(path)
        assert done.returncode == 1, (path.name, done.stdout, done.stderr)
        lines = done.stdout.splitlines()
        expected = expected_problems(path)
        assert expected, path.name
        for severity, row, column, text in expected:
            assert_reported(path, done.stdout, severity, row, column, text)
        errors = sum(1 for severity, *_ in expected if severity == "error")
        assert lines[-1].startswith(f"{path}: not valid: {errors} error"), lines[-1]


def test_verify_takes_a_service_folder_and_says_unreadable_with_exit_2(tmp_path):
    done = verify(SOURCE_DIR / "examples" / "pytest-service")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid action service" in done.stdout
    missing = verify(tmp_path / "nothing.yaml")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr and "nothing.yaml" in missing.stderr
    empty_folder = verify(tmp_path)
    assert empty_folder.returncode == 2
    assert "service.yaml" in empty_folder.stderr
