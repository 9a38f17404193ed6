"""Hostile input end to end: tasks that are huge, deep or not UTF-8 are answered with an
error payload that names the problem (their identity is still read), and a service whose
output holds NUL bytes and invalid UTF-8 still gets a valid JSON payload posted."""

import json

import pytest


DEEP = "[" * 100000 + "]" * 100000


@pytest.mark.parametrize("task_id, body, problem", [
    pytest.param("huge", json.dumps({"id": "huge", "repositoryUrl": "https://e.org/r.git",
                                     "pad": "x" * (2 * 1024 * 1024)}).encode(),
                 "more than the limit of 1048576 bytes", id="huge"),
    pytest.param("deep", ('{"id": "deep", "repositoryUrl": "https://e.org/r.git", "x": ' + DEEP + "}").encode(),
                 "levels deep", id="deeply-nested"),
    pytest.param("latin1", b'{"id": "latin1", "repositoryUrl": "https://e.org/r.git", "branch": "caf\xe9"}',
                 "not valid UTF-8", id="not-utf8"),
])
def test_a_huge_deep_or_not_utf8_task_is_refused_with_its_problem_and_answered(backend, run_runner, task_id, body,
                                                                               problem):
    b = backend([])
    b.post("/admin/raw-task", body)

    done = run_runner("--backend-url", b.url, "--once", "--service", "/nonexistent")

    assert done.returncode == 2
    [payload] = b.results()
    assert payload["id"] == task_id and payload["isError"] is True
    assert problem in payload["errorDetails"]


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
    [payload] = b.results()
    assert payload["isError"] is True
    assert "before" in payload["errorDetails"] and "invalid" in payload["errorDetails"]
    assert "\x00" not in payload["errorDetails"]
