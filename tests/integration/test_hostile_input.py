"""Hostile input end to end: tasks that are huge, deep or not UTF-8 are answered with an
error payload that names the problem (their identity is still read), and a service whose
output holds NUL bytes and invalid UTF-8 still gets a valid JSON payload posted."""

import json

from conftest import wait_for_line


def test_a_huge_task_is_refused_with_its_size_and_answered(backend, run_runner):
    b = backend([])
    padding = "x" * (2 * 1024 * 1024)
    b.post("/admin/raw-task", json.dumps({"id": "huge", "repositoryUrl": "https://e.org/r.git", "pad": padding}).encode())

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    [payload] = b.results()
    assert payload["id"] == "huge" and payload["isError"] is True
    assert "more than the limit of 1048576 bytes" in payload["errorDetails"]


def test_a_deeply_nested_task_is_refused_and_answered(backend, run_runner):
    b = backend([])
    deep = "[" * 100000 + "]" * 100000
    b.post("/admin/raw-task", ('{"id": "deep", "repositoryUrl": "https://e.org/r.git", "x": ' + deep + "}").encode())

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    [payload] = b.results()
    assert payload["id"] == "deep" and payload["isError"] is True
    assert "levels deep" in payload["errorDetails"]


def test_a_task_that_is_not_utf8_is_refused_and_answered(backend, run_runner):
    b = backend([])
    b.post("/admin/raw-task", b'{"id": "latin1", "repositoryUrl": "https://e.org/r.git", "branch": "caf\xe9"}')

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    [payload] = b.results()
    assert payload["id"] == "latin1" and payload["isError"] is True
    assert "not valid UTF-8" in payload["errorDetails"]


def test_service_output_with_nul_and_invalid_utf8_still_gives_a_valid_json_payload(backend, make_repo, make_service,
                                                                                    run_runner, tmp_path):
    repo = make_repo({"README": "x\n"})
    service = make_service("""
        cmd: sh noisy.sh
        timeout: 30
        """, {"noisy.sh": r"""
        printf 'before\000nul \377\376 invalid \303 cut\n'
        printf 'stderr \000\377 too\n' >&2
        exit 3
        """})
    b = backend([{"id": "noisy", "repositoryUrl": f"file://{repo}"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 3
    # The mock parsed what it recorded as JSON; read the raw line too.
    raw = (b.results_file).read_bytes()
    raw.decode("utf-8")  # valid UTF-8 on the wire
    [payload] = b.results()
    assert payload["isError"] is True
    assert "before" in payload["errorDetails"] and "invalid" in payload["errorDetails"]
    assert "\x00" not in payload["errorDetails"]
