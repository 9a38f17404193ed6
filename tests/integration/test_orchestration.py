"""Orchestrations through the real agent (SPEC §8): `runner orchestrate` on the seed's
description format with real service processes on a real clock, a task that names an
orchestration, and the input errors found before anything starts."""

import json
import pathlib
import signal
import uuid

from conftest import SYSTEM_PYTHON, processes_with, wait_for_line, wait_until


def write_services(make_service, services):
    """services: name -> service.yaml text. Returns the services folder."""
    folders = [make_service(spec, name=name) for name, spec in services.items()]
    return folders[0].parent


def write_description(root, description):
    folder = root / "descriptions"
    folder.mkdir(exist_ok=True)
    path = folder / f"{description['test_name']}.json"
    path.write_text(json.dumps(description, indent=2))
    return path


def by_name(payload):
    return {case["name"].split("::", 1)[-1]: case for case in payload["testResults"]}


def test_ten_seconds_with_an_overlapping_event_and_a_teardown_event(make_service, run_runner, tmp_path):
    marker = f"proctor-orch-{uuid.uuid4().hex}"
    services = write_services(make_service, {
        "tick": """\
            cmd: echo tick ${label}
            item_properties:
            - key: label
              type: text
              value: none
            """,
        # Runs 2.5 s, so with a 1 s interval two of every three ticks find it running.
        "slow": f"""\
            cmd: {SYSTEM_PYTHON} -c "import time; time.sleep(2.5)" {marker}
            """,
        "final": """\
            cmd: echo collected
            """,
    })
    description = write_description(tmp_path, {
        "test_name": "ten_seconds",
        "total_hours": 10 / 3600,
        "events": [
            {"name": "tick", "interval_sec": 1, "params": {"label": "a"}},
            {"name": "slow", "interval_sec": 1},
            {"name": "final", "at_startup": False, "at_teardown": True},
        ],
    })

    done = run_runner("--services", str(services), "--results-dir", str(tmp_path / "results"),
                      "orchestrate", str(description), timeout=60)

    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["id"] == "ten_seconds"
    assert payload["isPassed"] is True and payload["isError"] is False, payload
    cases = by_name(payload)
    # tick: at 0 s (startup), then every second before the end at 10 s.
    assert sorted(n for n in cases if n.startswith("tick")) == sorted(f"tick #{k}" for k in range(1, 11))
    assert all(cases[f"tick #{k}"]["isPassed"] for k in range(1, 11))
    # slow: runs at 0, 3, 6 and 9 s; the ticks between find it still running; the run at
    # 9 s is stopped by the kill switch at 10 s.
    started = [f"slow #{k}" for k in (1, 4, 7, 10)]
    skipped = [f"slow #{k}" for k in (2, 3, 5, 6, 8, 9)]
    assert sorted(n for n in cases if n.startswith("slow")) == sorted(started + skipped)
    for name in skipped:
        assert "the previous run was still going" in cases[name]["description"], cases[name]
    assert "final #1" in cases and cases["final #1"]["isPassed"]
    assert not processes_with(marker), "a run of the slow event outlived the orchestration"

    # The layout: the orchestration as the service record, each run a record of its own.
    tests = json.loads((tmp_path / "results" / "ten_seconds" / "tests.json").read_text())
    assert tests["test_suite"]["status"] == "success"
    records = {r.get("title", r["testname"]): r for r in tests["test_records"]}
    assert len(records) == 1 + 10 + 4 + 6 + 1
    assert records["slow #10"]["status"] == "terminated"
    assert records["slow #2"]["status"] == "warning"
    assert records["final #1"]["status"] == "success"
    facts = json.loads((tmp_path / "results" / "ten_seconds" / "service" / "output.json").read_text())
    assert facts["runs"] == 15 and facts["skipped"] == 6 and facts["stopped"] == 1 and facts["failed"] == 0
    assert facts["skipped_by_reason"] == {"overlap": 6}
    log = (tmp_path / "results" / "ten_seconds" / records["tick #3"]["testname"] / "log.txt").read_text()
    assert log == "tick a\n"
    run = json.loads((tmp_path / "results" / "ten_seconds" / records["tick #3"]["testname"] / "output.json").read_text())
    assert run["exit_code"] == 0 and run["kind"] == "interval" and run["planned_s"] == 2.0
    assert run["start_delay_ms"] >= 0


def test_strict_fails_an_orchestration_with_a_skipped_run(make_service, run_runner, tmp_path):
    services = write_services(make_service, {"slow": "cmd: sleep 1.5\n"})
    description = write_description(tmp_path, {"test_name": "strict", "total_hours": 1.2 / 3600,
                                               "events": [{"name": "slow", "interval_sec": 0.5}]})

    done = run_runner("--services", str(services), "--strict", "orchestrate", str(description), timeout=60)

    assert done.returncode == 1, done.stderr
    cases = by_name(json.loads(done.stdout))
    assert cases["slow #2"]["isPassed"] is False
    assert "the previous run was still going" in cases["slow #2"]["description"]


def test_sigterm_ends_early_stops_every_run_and_still_runs_the_teardown(make_service, start_runner, tmp_path):
    marker = f"proctor-orch-{uuid.uuid4().hex}"
    services = write_services(make_service, {
        "tick": "cmd: echo tick\n",
        "long": f"""\
            cmd: {SYSTEM_PYTHON} -c "import time; time.sleep(600)" {marker}
            """,
        "final": "cmd: echo collected\n",
    })
    write_description(tmp_path, {
        "test_name": "an_hour",
        "total_hours": 1,
        "events": [{"name": "tick", "interval_sec": 0.2}, {"name": "long"},
                   {"name": "final", "at_startup": False, "at_teardown": True}],
    })
    runner = start_runner("--services", str(services), "--descriptions", str(tmp_path / "descriptions"),
                          "orchestrate", "an_hour")
    wait_for_line(runner.stderr, "tick #3")
    # Started with the first tick, but its exec may come after a few ticks on a loaded machine.
    wait_until(lambda: processes_with(marker), what="the long event running")

    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=30)

    assert runner.returncode == 3, err
    payload = json.loads(out)
    assert payload["isError"] is True
    assert "stopped by a signal" in payload["errorDetails"]
    cases = by_name(payload)
    assert cases["final #1"]["isPassed"] is True
    assert cases["long #1"]["isPassed"] is True  # stopped by the kill switch, not failed
    assert not processes_with(marker)


def test_input_errors_are_found_before_anything_starts(make_service, run_runner, tmp_path):
    services = write_services(make_service, {"tick": """\
        cmd: echo ${count}
        item_properties:
        - key: count
          type: integer
          value: 1
        """})
    description = tmp_path / "wrong_name.json"
    description.write_text('{"test_name": "other", "total_hours": "two", "events": [{"interval_sec": 1}]}')
    done = run_runner("--services", str(services), "orchestrate", str(description))
    assert done.returncode == 2
    assert "test_name: is 'other' but the file is named 'wrong_name'" in done.stderr
    assert "total_hours: must be a number above 0, not a string" in done.stderr
    assert "events[0].name: missing" in done.stderr
    assert done.stdout == ""

    description = write_description(tmp_path, {"test_name": "bad_params", "total_hours": 1, "events": [
        {"name": "tick", "params": {"count": "many", "colour": "red"}}, {"name": "nowhere"}]})
    done = run_runner("--services", str(services), "orchestrate", str(description))
    assert done.returncode == 2
    assert "the service's input 'count' is invalid" in done.stderr or "params 'colour'" in done.stderr
    assert "no service named 'nowhere'" in done.stderr
    assert not (tmp_path / "work" / "orchestrations" / "bad_params").exists()

    done = run_runner("orchestrate", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "no description file" in done.stderr


def test_a_task_names_an_orchestration(make_service, backend, make_repo, run_runner, tmp_path):
    repo = make_repo({"README": "submission\n"})
    services = write_services(make_service, {
        # The submission is there for every event, as for a service.
        "check": "cmd: test -f ${repository_dir}/README && echo submission seen\n",
        "collect": "cmd: echo lab ${laboratory_number}\n",
    })
    write_description(tmp_path, {"test_name": "lab_orchestration", "total_hours": 0.6 / 3600,
                                 "events": [{"name": "check", "interval_sec": 0.25},
                                            {"name": "collect", "at_startup": False, "at_teardown": True}]})
    b = backend([{"id": "orch-1", "repositoryUrl": f"file://{repo}", "branch": "main", "laboratoryNumber": 4,
                  "service": "lab_orchestration"}])

    done = run_runner("--backend-url", b.url, "--once", "--services", str(services),
                      "--descriptions", str(tmp_path / "descriptions"))

    assert done.returncode == 0, done.stderr
    [payload] = b.results()
    assert payload["isPassed"] is True and payload["isError"] is False, payload
    cases = by_name(payload)
    assert {"check #1", "check #2", "check #3", "collect #1"} <= set(cases), cases
    assert all(case["isPassed"] for case in cases.values())
    records = json.loads((tmp_path / "work" / "results" / "orch-1" / "tests.json").read_text())["test_records"]
    titles = [r.get("title", r["testname"]) for r in records]
    assert titles[:2] == ["fetch", "service"] and "collect #1" in titles
    log = next(r for r in records if r.get("title") == "collect #1")
    assert (tmp_path / "work" / "results" / "orch-1" / log["testname"] / "log.txt").read_text() == "lab 4\n"
