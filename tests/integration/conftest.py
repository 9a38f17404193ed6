"""Fixtures for integration tests: the real mock_backend and runner binaries, real git
repositories and real pytest services, all made inside the test's tmp_path."""

import json
import os
import pathlib
import signal
import subprocess
import textwrap
import threading
import time
import urllib.request

import pytest

BUILD_DIR = pathlib.Path(os.environ.get("PROCTOR_BUILD_DIR", pathlib.Path(__file__).parents[2] / "build"))
SOURCE_DIR = pathlib.Path(os.environ.get("PROCTOR_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
RUNNER = BUILD_DIR / "agent" / "runner"
MOCK_BACKEND = BUILD_DIR / "mock_backend" / "mock_backend"
SYSTEM_PYTHON = "/usr/bin/python3"
SERVICES_DIR = "services"  # below tmp_path: where make_service(name=...) puts a named service


class Backend:
    """A running mock_backend process."""

    def __init__(self, workdir, tasks, args):
        self.results_file = workdir / "results.jsonl"
        tasks_file = workdir / "tasks.json"
        tasks_file.write_text(json.dumps(tasks))
        self.stderr_path = workdir / "backend.log"
        self.proc = subprocess.Popen(
            [str(MOCK_BACKEND), "--port", "0", "--tasks", str(tasks_file), "--results", str(self.results_file), *args],
            stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"), text=True)
        line = self.proc.stdout.readline()  # blocks until the server is listening
        assert line.startswith("listening on "), f"mock_backend did not start: {line!r}"
        self.address = line.split()[-1]
        self.url = f"http://{self.address}"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def post(self, path, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def results(self):
        return self.get("/results")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def backend(tmp_path):
    """backend(tasks, *args) starts a mock_backend serving `tasks`."""
    started = []

    def start(tasks=(), *args):
        folder = tmp_path / f"backend{len(started)}"
        folder.mkdir()
        b = Backend(folder, list(tasks), list(args))
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def git_repo(repo, files, branch="main"):
    """Makes `repo` a git repository of one commit holding `files` ({path: text})."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", branch)
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def make_repo(tmp_path):
    """make_repo(files, branch="main") creates a git repository holding `files`."""
    counter = [0]

    def create(files, branch="main", name=None):
        counter[0] += 1
        return git_repo(tmp_path / (name or f"repo{counter[0]}"), files, branch)

    return create


@pytest.fixture
def make_service(tmp_path):
    """make_service(yaml, files, name=None) writes a service folder; a named one goes in
    tmp_path/"services" (SERVICES_DIR), the folder --services takes."""
    counter = [0]

    def create(spec, files=None, name=None):
        counter[0] += 1
        folder = tmp_path / SERVICES_DIR / name if name else tmp_path / f"service{counter[0]}"
        folder.mkdir(parents=True)
        (folder / "service.yaml").write_text(textwrap.dedent(spec))
        for path, content in (files or {}).items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content))
        return folder

    return create


def runner_args(tmp_path, *args):
    return [str(RUNNER), "--work-dir", str(tmp_path / "work"), "--allow-schemes", "https,http,ssh,git,file",
            "--check-interval", "0.05", "--kill-grace", "1", *args]


@pytest.fixture
def run_runner(tmp_path):
    """run_runner(*args, timeout=120) runs runner to its end: CompletedProcess."""

    def run(*args, timeout=120):
        return subprocess.run(runner_args(tmp_path, *args), capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def start_runner(tmp_path):
    """start_runner(*args, env=None) starts runner in the background, with `env` added to the
    environment; stderr is readable line by line."""
    procs = []

    def start(*args, env=None):
        proc = subprocess.Popen(runner_args(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, **env} if env else None)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_line(stream, needle, limit=2000, timeout=120):
    """Reads `stream` line by line until a line contains `needle`; returns the lines read.
    Fails at the end of the stream, after `limit` lines, or after `timeout` seconds (a
    process that stays silent does not hang the test: the read runs on a thread)."""
    lines = []
    found = threading.Event()

    def read():
        for _ in range(limit):
            line = stream.readline()
            if not line:
                return
            lines.append(line)
            if needle in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if found.is_set():
        return lines
    raise AssertionError(f"{needle!r} never appeared (within {timeout:g} s) in:\n{''.join(lines)}")


def wait_until(condition, *, timeout=30, what="the condition"):
    """Polls `condition` every 50 ms until it returns something truthy, and returns that;
    raises AssertionError naming `what` (a text, or a callable giving one) after `timeout`
    seconds. `condition` may itself raise to fail at once (a process that died, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        time.sleep(0.05)  # between polls of the condition


def processes_with(marker):
    """PIDs of live processes whose command line contains `marker`."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(l for l in (entry / "status").read_text().splitlines() if l.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if marker in cmdline and "Z" not in state.split()[1]:
            found.append(int(entry.name))
    return found


PYTHON_SUBMISSION_GOOD = {
    "calc.py": """
        def add(a, b):
            return a + b

        def divide(a, b):
            return a / b
        """,
}

PYTHON_SUBMISSION_BUGGY = {
    "calc.py": """
        def add(a, b):
            return a - b

        def divide(a, b):
            return a / b
        """,
}

PYTEST_SERVICE_YAML = """
    cmd: /usr/bin/python3 -m pytest -q -p no:cacheprovider --junit-xml=${junit_xml} tests
    timeout: 120
    """

PYTEST_SERVICE_FILES = {
    "tests/test_calc.py": """
        import os
        import sys

        sys.path.insert(0, os.environ["OT_REPOSITORY_DIR"])
        import calc


        def test_add():
            assert calc.add(2, 3) == 5


        def test_divide():
            assert calc.divide(6, 3) == 2


        def test_divide_by_zero():
            import pytest
            with pytest.raises(ZeroDivisionError):
                calc.divide(1, 0)
        """,
}


def have_system_pytest():
    return subprocess.run([SYSTEM_PYTHON, "-c", "import pytest"], capture_output=True).returncode == 0
