"""The agent as a managed service (issue 7): --print-config, the /metrics and /healthz
endpoint of --metrics-address, and systemd's notify protocol (READY, STOPPING, WATCHDOG)
heard on a real datagram socket, as systemd would hear them."""

import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request

from conftest import (PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_BUGGY, PYTHON_SUBMISSION_GOOD,
                      RUNNER, wait_for_line, wait_until)


def print_config(tmp_path, *args, env=None):
    done = subprocess.run([str(RUNNER), "--print-config", *args], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **(env or {})), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


def setting(text, name):
    """(value, source) of `name` in --print-config output, or None when it is not set."""
    match = re.search(rf"^{re.escape(name)}: (.*?)  # (.*)$", text, re.MULTILINE)
    return (match.group(1), match.group(2)) if match else None


def test_print_config_merges_file_environment_and_command_line_and_masks_secrets(tmp_path):
    config = tmp_path / "runner.yaml"
    config.write_text("concurrent: 4\nallow_schemes: [https, file]\ntimeout: 50\nlogin: from-file\n")
    text = print_config(tmp_path, "--config", str(config), "--timeout", "70", "--password", "hunter2", "--no-events",
                        "--backend-url", "https://bob:pa55@backend.example:8443/base",
                        env={"RUNNER_LOGIN": "from-env", "RUNNER_CONCURRENT": ""})
    assert setting(text, "concurrent") == ("4", "config file")  # an empty variable does not count
    assert setting(text, "allow-schemes") == ("https,file", "config file")
    assert setting(text, "login") == ("from-env", "environment (RUNNER_LOGIN)")
    assert setting(text, "timeout") == ("70", "command line")
    assert setting(text, "events") == ("false", "command line")
    assert setting(text, "kill-grace") == ("10", "default")
    # A secret is only said to be set: a saved output must not set it to a mask.
    assert setting(text, "password") is None
    assert "# set, not shown: backend-url (command line), password (command line)\n" in text
    assert "hunter2" not in text and "pa55" not in text
    assert re.search(r"^# not set: .*metrics-address", text, re.MULTILINE)


def test_print_config_output_is_a_config_file_that_reads_back_to_the_same_values(tmp_path):
    first = print_config(tmp_path, "--concurrent", "3", "--check-interval", "0.25", "--allow-schemes", "https,svn",
                         "--no-results-layout", "--strip-prefix", "a b: c")
    saved = tmp_path / "saved.yaml"
    saved.write_text(first)
    again = print_config(tmp_path, "--config", str(saved))
    values = lambda text: re.findall(r"^([a-z-]+): (.*?)  #", text, re.MULTILINE)
    assert values(again) == values(first)
    assert setting(again, "strip-prefix") == (setting(first, "strip-prefix")[0], "config file")


def test_an_empty_value_in_the_config_file_is_empty_and_leaves_the_next_setting_alone(tmp_path):
    config = tmp_path / "runner.yaml"
    config.write_text('strip-prefix: ""\nconcurrent: 3\n')
    text = print_config(tmp_path, "--config", str(config), "--kill-grace", "4")
    assert setting(text, "strip-prefix") is None  # empty: listed as not set, not "tests."
    assert re.search(r"^# not set: .*strip-prefix", text, re.MULTILINE)
    assert setting(text, "concurrent") == ("3", "config file")
    assert setting(text, "kill-grace") == ("4", "command line")


def test_an_empty_flag_in_the_config_file_is_refused_with_its_line(tmp_path):
    config = tmp_path / "runner.yaml"
    config.write_text('concurrent: 2\nonce: ""\n')
    done = subprocess.run([str(RUNNER), "--config", str(config), "--print-config"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert f"{config}:2: 'once' is a flag: give true or false" in done.stderr


def get(url):
    """(status, content type, body) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def metric(text, name, labels=""):
    """The value of one sample in Prometheus text, as a float."""
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"no sample {name}{labels} in:\n{text}"
    return float(match.group(1))


def test_metrics_count_tasks_by_result_and_healthz_turns_503_while_stopping(tmp_path, backend, make_repo,
                                                                            make_service, start_runner):
    good = make_repo(PYTHON_SUBMISSION_GOOD)
    buggy = make_repo(PYTHON_SUBMISSION_BUGGY)
    make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES, name="pytest")
    services = make_service("cmd: sleep 120\n", name="sleepy").parent
    b = backend([{"id": "good", "repositoryUrl": f"file://{good}", "service": "pytest"},
                 {"id": "buggy", "repositoryUrl": f"file://{buggy}", "service": "pytest"},
                 {"id": "nowhere", "repositoryUrl": f"file://{tmp_path}/missing", "service": "pytest"}])
    runner = start_runner("--backend-url", b.url, "--services", str(services), "--concurrent", "2",
                          "--metrics-address", "127.0.0.1:0", "--shutdown-grace", "3")
    lines = wait_for_line(runner.stderr, "metrics at http://")
    port = re.search(r"\(port (\d+)\)", lines[-1]).group(1)
    base = f"http://127.0.0.1:{port}"

    status, content_type, body = get(base + "/healthz")
    assert status == 200 and content_type == "application/json"
    assert '"status":"ok"' in body and '"slots":2' in body

    # Every result arrives; then the counters say how each task went.
    wait_until(lambda: len(b.results()) == 3, timeout=120, what="three results")
    wait_until(lambda: metric(get(base + "/metrics")[2], "proctor_results_posted_total") == 3,
               what="three posted results counted")
    status, content_type, text = get(base + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert metric(text, "proctor_tasks_taken_total") == 3
    assert metric(text, "proctor_tasks_finished_total", '{result="passed"}') == 1
    assert metric(text, "proctor_tasks_finished_total", '{result="failed"}') == 1
    assert metric(text, "proctor_tasks_finished_total", '{result="error"}') == 1
    assert metric(text, "proctor_task_duration_seconds_count") == 3
    assert metric(text, "proctor_task_duration_seconds_bucket", '{le="+Inf"}') == 3
    assert metric(text, "proctor_slots") == 2
    assert metric(text, "proctor_spool_pending_results") == 0
    assert metric(text, "proctor_build_info", '{version="0.1.0"}') == 1
    assert metric(text, "proctor_stopping") == 0
    assert get(base + "/nothing")[0] == 404

    # The event stream (on by default) counts its clients: one connects, then goes.
    assert metric(text, "proctor_event_subscribers") == 0
    assert metric(text, "proctor_event_subscribers_dropped_total") == 0
    subscriber = subprocess.Popen([str(RUNNER), "subscribe", "--socket", str(tmp_path / "work" / "events.sock")],
                                  stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: metric(get(base + "/metrics")[2], "proctor_event_subscribers") == 1,
                   what="the subscriber counted")
    finally:
        subscriber.terminate()
        subscriber.wait(timeout=30)
    wait_until(lambda: metric(get(base + "/metrics")[2], "proctor_event_subscribers") == 0,
               what="the subscriber gone from the count")

    # A task that sleeps holds the agent in its shutdown grace; meanwhile it is not healthy.
    b.post("/admin/tasks", [{"id": "sleepy", "repositoryUrl": f"file://{good}", "service": "sleepy"}])
    wait_until(lambda: metric(get(base + "/metrics")[2], "proctor_slots_in_state", '{state="running"}') == 1,
               what="the sleepy task running")
    runner.send_signal(signal.SIGTERM)
    wait_until(lambda: get(base + "/healthz")[0] == 503, what="/healthz answering 503")
    assert '"status":"stopping"' in get(base + "/healthz")[2]
    assert runner.wait(timeout=60) == 0
    assert len(b.results()) == 4  # the sleepy task, stopped at the end of the grace, is answered


def test_a_metrics_address_that_is_taken_or_malformed_stops_the_start(tmp_path, start_runner):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    for address, why in ((f"127.0.0.1:{port}", "cannot listen there"), ("nowhere", "no port"),
                         ("example.org:80", "not an IP address")):
        runner = start_runner("--backend-url", "http://127.0.0.1:1", "--metrics-address", address)
        assert runner.wait(timeout=30) == 2
        assert why in runner.stderr.read()
    taken.close()


def test_systemd_hears_ready_watchdog_pings_and_stopping(tmp_path, backend, start_runner):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    listener.bind(str(path))
    listener.settimeout(30)
    b = backend([])
    # WATCHDOG_USEC 200 ms: pinged every 100 ms.
    runner = start_runner("--backend-url", b.url, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"})

    def next_message():
        return listener.recv(4096).decode()

    ready = next_message()
    assert ready.startswith("READY=1\n") and f"STATUS=polling {b.url}" in ready
    assert [next_message() for _ in range(3)] == ["WATCHDOG=1"] * 3
    runner.send_signal(signal.SIGTERM)
    # Pings may still come before it; bounded, in case they never stop.
    message = wait_until(lambda: (m := next_message()) != "WATCHDOG=1" and m, what="a message other than a ping")
    assert message.startswith("STOPPING=1\n")
    assert runner.wait(timeout=30) == 0
    listener.close()
