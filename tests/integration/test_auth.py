"""Logging in to the backend (SPEC §2.3) and where credentials come from (SPEC §3): one
login shared by every slot, tokens refreshed before they expire, a refresh invalidated by
another login, a 401 retried once, a 403 explained, the config file's precedence, and no
password or token anywhere the agent writes."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import uuid

import pytest

from conftest import RUNNER, runner_args, wait_until

PROBE_SERVICE_YAML = """
    cmd: /usr/bin/python3 probe.py ${junit_xml}
    timeout: 60
    """

# A service that passes one case and leaves its whole environment in its folder, so that
# the leak check also covers what a service could see.
PROBE_SERVICE_FILES = {
    "probe.py": """
        import os, sys
        with open("env-dump.txt", "w") as out:
            for key, value in sorted(os.environ.items()):
                out.write(f"{key}={value}\\n")
        with open(sys.argv[1], "w") as junit:
            junit.write("<testsuite name='probe'><testcase classname='tests.probe' name='ok'/></testsuite>")
        """,
}


class RecordingProxy:
    """A TCP relay in front of the mock backend that keeps every byte the backend sent
    back: the login and refresh answers, so the test knows every token the agent got."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.received = bytearray()
        self.lock = threading.Lock()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source, sink, record):
        try:
            while data := source.recv(65536):
                if record:
                    with self.lock:
                        self.received += data
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def tokens(self):
        """Every access and refresh token the backend handed out through this proxy."""
        with self.lock:
            text = self.received.decode(errors="replace")
        return set(re.findall(r'"(?:accessToken|refreshToken)"\s*:\s*"([^"]+)"', text))

    def close(self):
        self.listener.close()
        for s in self.sockets:
            s.close()


class Agent:
    """A runner daemon in the background, its stdout and stderr in files."""

    def __init__(self, tmp_path, args, env=None, name="agent"):
        self.stdout_path = tmp_path / f"{name}.stdout"
        self.stderr_path = tmp_path / f"{name}.stderr"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        environment.update(env or {})
        self.proc = subprocess.Popen(runner_args(tmp_path, *args), stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"), env=environment)

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_for_log(self, needle, timeout=30):
        return wait_until(lambda: needle in self.log(), timeout=timeout, what=f"{needle!r} in the agent's log")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def start_agent(tmp_path):
    """start_agent(*args, env=None): a runner daemon; killed at the end if still running."""
    started = []

    def start(*args, env=None):
        agent = Agent(tmp_path, list(args), env, name=f"agent{len(started)}")
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()


def requests_to(b, target, **fields):
    """The mock's logged requests to `target` whose fields match `fields`."""
    return [r for r in b.get("/admin/requests")
            if r["target"] == target and all(r.get(k) == v for k, v in fields.items())]


def agent_logins(b):
    """The agent's logins (they carry X-Runner-Id; the test's own do not)."""
    return [r for r in requests_to(b, "/api/v1/login") if r["runner_id"] is not None]


def queue_probe_task(b, repo, task_id):
    b.post("/admin/tasks", [{"id": task_id, "repositoryUrl": f"file://{repo}"}])


def delivered(b, task_id):
    return [r for r in b.results() if r["id"] == task_id]


def password_file(tmp_path, password):
    path = tmp_path / "password.txt"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def test_slots_share_one_login(tmp_path, backend, make_repo, make_service, start_agent):
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([], "--auth", "runner:right-password")
    agent = start_agent("--backend-url", b.url, "--auth", "--login", "runner", "--concurrent", "3",
                        "--service", str(service), env={"RUNNER_PASSWORD": "right-password"})

    for n in range(6):
        queue_probe_task(b, repo, f"shared-{n}")
    wait_until(lambda: len(b.results()) == 6, what="six results")
    assert agent.stop() == 0

    assert len(agent_logins(b)) == 1
    assert b.get("/admin/stats")["duplicate_results"] == 0


def test_tokens_are_refreshed_before_they_expire(tmp_path, backend, make_repo, make_service, start_agent):
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([], "--auth", "runner:pw", "--token-ttl", "4")
    agent = start_agent("--backend-url", b.url, "--auth", "--login", "runner", "--service", str(service),
                        env={"RUNNER_PASSWORD": "pw"})

    queue_probe_task(b, repo, "before")
    wait_until(lambda: delivered(b, "before"), what="the first result")
    # Three 4 s lifetimes: each token is refreshed at half of it, before it runs out.
    wait_until(lambda: len(requests_to(b, "/api/v1/auth/refresh", status=200)) >= 3, timeout=60, what="three refreshes")
    queue_probe_task(b, repo, "after")
    wait_until(lambda: delivered(b, "after"), what="the result after the refreshes")
    assert agent.stop() == 0

    assert len(agent_logins(b)) == 1  # refreshed, never logged in again
    assert requests_to(b, "/api/task/available", status=401) == []


def test_a_refresh_invalidated_by_another_login_falls_back_to_a_login(tmp_path, backend, make_repo, make_service,
                                                                      start_agent):
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([], "--auth", "runner:pw", "--token-ttl", "4")
    agent = start_agent("--backend-url", b.url, "--auth", "--login", "runner", "--service", str(service),
                        env={"RUNNER_PASSWORD": "pw"})
    wait_until(lambda: agent_logins(b), what="the agent's login")

    # The same account logs in elsewhere: the agent's refresh token dies.
    b.post("/api/v1/login", {"username": "runner", "password": "pw"})

    wait_until(lambda: requests_to(b, "/api/v1/auth/refresh", status=401), what="the agent's refused refresh")
    wait_until(lambda: len(agent_logins(b)) == 2, what="the agent's second login")
    queue_probe_task(b, repo, "after-relogin")
    wait_until(lambda: delivered(b, "after-relogin"), what="the result")
    assert agent.stop() == 0
    assert "refreshing the access token of 'runner' failed (HTTP 401); logging in again" in agent.log()


def test_a_401_logs_in_again_and_retries_the_call_once(tmp_path, backend, make_repo, make_service, start_agent):
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([{"id": "retried", "repositoryUrl": f"file://{repo}"}], "--auth", "runner:pw",
                "--fault", "get:401:1", "--fault", "post:401:1")
    agent = start_agent("--backend-url", b.url, "--auth", "--login", "runner", "--service", str(service),
                        env={"RUNNER_PASSWORD": "pw"})

    wait_until(lambda: delivered(b, "retried"), what="the result")
    assert agent.stop() == 0

    assert len(agent_logins(b)) == 3  # the first, then one per refused call
    assert len(requests_to(b, "/api/task/result", status=401)) == 1
    assert len(delivered(b, "retried")) == 1
    assert b.get("/admin/stats")["duplicate_results"] == 0


def test_an_account_without_the_runner_role_is_told_plainly_and_keeps_polling(tmp_path, backend, start_agent):
    b = backend([], "--auth", "viewer:pw:VIEWER")
    agent = start_agent("--backend-url", b.url, "--auth", "--login", "viewer", "--service", "/nonexistent",
                        env={"RUNNER_PASSWORD": "pw"})

    agent.wait_for_log("the account 'viewer' lacks the role for /api/task/available (403); check the account's role")
    wait_until(lambda: len(requests_to(b, "/api/task/available", status=403)) >= 2, what="a second poll after the 403")
    assert agent.proc.poll() is None  # still running
    assert agent.stop(timeout=15) == 0
    assert len(agent_logins(b)) == 1  # a 403 is no reason to log in again


def test_request_timeout_bounds_a_backend_call(tmp_path, backend, make_repo, make_service, start_agent):
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([], "--fault", "get:slow=20000:1")  # the queue is empty: the slow answer hands out nothing
    agent = start_agent("--backend-url", b.url, "--request-timeout", "1", "--service", str(service))

    agent.wait_for_log("timed out", timeout=15)  # long before the 20 s answer would come
    queue_probe_task(b, repo, "after-timeout")
    wait_until(lambda: delivered(b, "after-timeout"), what="the result")
    assert agent.stop() == 0


def every_file(*roots):
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    yield path


@pytest.mark.parametrize("where", ["password-file", "environment", "config-file", "command-line"])
def test_no_password_or_token_anywhere(tmp_path, backend, make_repo, make_service, start_agent, where):
    password = "pw-" + uuid.uuid4().hex
    repo = make_repo({"README": "x\n"})
    service = make_service(PROBE_SERVICE_YAML, PROBE_SERVICE_FILES)
    b = backend([], "--auth", f"runner:{password}", "--token-ttl", "4")
    proxy = RecordingProxy(b.address)
    log_file = tmp_path / "agent.log"
    args = ["--backend-url", proxy.url, "--auth", "--login", "runner", "--service", str(service),
            "--logger-output", str(log_file), "--logger-level", "trace"]
    env = {}
    if where == "password-file":
        args += ["--password-file", str(password_file(tmp_path, password))]
    elif where == "environment":
        env["RUNNER_PASSWORD"] = password
    elif where == "config-file":
        config = tmp_path / "agent.yaml"
        config.write_text(f"password: '{password}'\n")
        args += ["--config", str(config)]
    else:
        args += ["--password", password]
    try:
        agent = start_agent(*args, env=env)
        wait_until(lambda: log_file.exists() and "events at" in log_file.read_text(errors="replace"),
                   what="the event stream")
        events_path = tmp_path / "events.jsonl"
        subscriber = subprocess.Popen([str(RUNNER), "subscribe", "--socket", str(tmp_path / "work" / "events.sock")],
                                      stdout=open(events_path, "wb"), stderr=subprocess.STDOUT)
        cmdline = (pathlib.Path("/proc") / str(agent.proc.pid) / "cmdline").read_bytes()

        # Tasks until the subscriber has seen one whole (it may attach after the first began).
        for attempt in range(5):
            queue_probe_task(b, repo, f"secret-check-{attempt}")
            wait_until(lambda a=attempt: delivered(b, f"secret-check-{a}"), what="the result")
            try:
                wait_until(lambda a=attempt: f'"secret-check-{a}"' in events_path.read_text(errors="replace") and
                           '"stop_task"' in events_path.read_text(errors="replace"),
                           timeout=5, what="the task's events")
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the subscriber never saw a task")
        # At least one refresh, so that more than the first tokens are looked for.
        wait_until(lambda: requests_to(b, "/api/v1/auth/refresh", status=200), timeout=60, what="a token refresh")
        assert agent.stop() == 0
        subscriber.wait(timeout=30)
    finally:
        proxy.close()

    tokens = proxy.tokens()
    assert len(tokens) >= 4  # two access and two refresh tokens at least
    secrets = {password.encode(): "the password"}
    secrets.update({token.encode(): f"token {token[:12]}..." for token in tokens})
    assert password.encode() not in cmdline, "the password is visible in /proc/PID/cmdline"
    if where == "command-line":
        assert "--password was given on the command line" in log_file.read_text()
    files = list(every_file(tmp_path / "work", log_file, agent.stdout_path, agent.stderr_path, events_path))
    assert any(path.name == "env-dump.txt" for path in files)  # the service's environment is among them
    leaks = []
    for path in files:
        data = path.read_bytes()
        leaks += [f"{what} in {path}" for secret, what in secrets.items() if secret in data]
    recorded = json.dumps(b.results()).encode()
    leaks += [f"{what} in the posted result" for secret, what in secrets.items() if secret in recorded]
    assert leaks == []


def test_config_file_below_environment_below_command_line(tmp_path, start_agent):
    config = tmp_path / "agent.yaml"
    config.write_text("concurrent: 4\nallow_schemes: [https, file]\ncheck-interval: 0.05\n")
    base = ["--backend-url", "http://127.0.0.1:1", "--config", str(config)]

    def slots(args, env):
        agent = start_agent(*args, env=env)
        agent.wait_for_log("slot(s)")
        assert agent.stop() == 0
        return re.search(r"with (\d+) slot\(s\)", agent.log()).group(1)

    assert slots(base, {}) == "4"
    assert slots(base, {"RUNNER_CONCURRENT": "3"}) == "3"
    assert slots(base + ["--concurrent", "2"], {"RUNNER_CONCURRENT": "3"}) == "2"


def test_config_file_errors_name_the_key_and_line(tmp_path, run_runner):
    config = tmp_path / "agent.yaml"
    config.write_text("concurrent: 2\n\nconcurent: 4\n")

    done = run_runner("--backend-url", "http://127.0.0.1:1", "--config", str(config))

    assert done.returncode == 2
    assert f"{config}:3: unknown option 'concurent'" in done.stderr


def test_password_file_problems_are_usage_errors(tmp_path, run_runner):
    missing = run_runner("--backend-url", "http://127.0.0.1:1", "--auth", "--password-file", str(tmp_path / "none"))
    assert missing.returncode == 2
    assert f"cannot read the password file {tmp_path / 'none'}" in missing.stderr

    both = run_runner("--backend-url", "http://127.0.0.1:1", "--auth", "--password", "pw-on-the-line",
                      "--password-file", str(password_file(tmp_path, "pw-in-the-file")))
    assert both.returncode == 2
    assert "both --password and --password-file are set in the command line" in both.stderr
    assert "pw-on-the-line" not in both.stderr and "pw-in-the-file" not in both.stderr


def test_password_file_from_the_environment_wins_over_the_config_files_password(tmp_path, backend, start_agent):
    b = backend([], "--auth", "runner:right")
    config = tmp_path / "agent.yaml"
    config.write_text("password: wrong\nlogin: runner\nauth: true\n")
    agent = start_agent("--backend-url", b.url, "--config", str(config), "--service", "/nonexistent",
                        env={"RUNNER_PASSWORD_FILE": str(password_file(tmp_path, "right"))})

    wait_until(lambda: agent_logins(b), what="the agent's login")
    assert agent.stop() == 0
    assert [r["status"] for r in agent_logins(b)] == [200]
