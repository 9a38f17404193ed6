"""`runner listen DIR`: a layout written step by step, each change read back from the
listener's stdout (synchronised on its output, never on sleeps)."""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import RUNNER, wait_until

DEADLINE_S = 20


class Listener:
    """A running `runner listen` whose stdout is read as JSON lines with a deadline."""

    def __init__(self, directory, *args):
        self.proc = subprocess.Popen([str(RUNNER), "listen", str(directory), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.buffer = b""
        self.seen = []

    def next_line(self):
        deadline = time.monotonic() + DEADLINE_S
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {DEADLINE_S} s; seen so far: {self.seen}"
            if self.selector.select(timeout=left):
                chunk = self.proc.stdout.read()
                assert chunk, f"the listener ended; seen: {self.seen}; stderr: {self.proc.stderr.read()!r}"
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        change = json.loads(line)
        self.seen.append(change)
        return change

    def expect(self, **fields):
        """Reads lines until one has `fields`; returns the lines read, that one last."""
        read = []
        while True:
            change = self.next_line()
            read.append(change)
            if all(change.get(k) == v for k, v in fields.items()):
                return read

    def wait(self):
        return self.proc.wait(timeout=DEADLINE_S)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def listener():
    started = []

    def start(directory, *args):
        started.append(Listener(directory, *args))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.rename(temporary, path)


def layout_json(records, suite_status=""):
    return json.dumps({"test_suite": {"status": suite_status, "links": []}, "test_records": records})


def append(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(text)


def test_listen_follows_a_layout_step_by_step(tmp_path, listener):
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "log.txt").write_text("SECRET outside\n")
    run = listener(results)
    records = [{"testname": "t1", "status": "in_process", "title": "First"}]

    write_atomic(results / "tests.json", layout_json(records))
    change = run.expect(change="record")[-1]
    assert change == {"change": "record", "testname": "t1", "status": "in_process", "title": "First"}

    log = results / "t1" / "log.txt"
    append(log, "line one\nline two\npart")
    read = run.expect(change="log")
    assert read[-1] == {"change": "log", "testname": "t1", "offset": 0, "bytes": 18,
                       "text": "line one\nline two\n"}

    append(log, "ial line\n")
    read = run.expect(change="log")
    assert read[-1] == {"change": "log", "testname": "t1", "offset": 18, "bytes": 13,
                       "text": "partial line\n"}
    assert [c["change"] for c in read] == ["log"]  # nothing sent twice

    records[0]["status"] = "success"
    write_atomic(results / "tests.json", layout_json(records))
    assert run.expect(change="status")[-1] == {"change": "status", "testname": "t1", "from": "in_process",
                                               "to": "success"}

    write_atomic(results / "t1" / "summary.txt", "first summary")
    assert run.expect(change="summary")[-1]["text"] == "first summary"
    write_atomic(results / "t1" / "summary.txt", "rewritten summary")
    assert run.expect(change="summary")[-1]["text"] == "rewritten summary"

    records.append({"testname": "Bad Name", "status": "success"})
    write_atomic(results / "tests.json", layout_json(records))
    assert "Bad Name" in run.expect(change="problem")[-1]["message"]

    records.append({"testname": "../evil", "status": "success"})
    write_atomic(results / "tests.json", layout_json(records))
    assert "../evil" in run.expect(change="problem")[-1]["message"]

    write_atomic(results / "tests.json", layout_json(records, "success"))
    read = run.expect(change="end")
    assert read[-1] == {"change": "end", "reason": "suite finished"}
    assert read[-2] == {"change": "suite", "status": "success", "links": []}
    assert run.wait() == 0
    assert all("SECRET" not in json.dumps(c) for c in run.seen)
    assert len([c for c in run.seen if c["change"] == "problem" and "Bad Name" in c["message"]]) == 1


def test_listen_stops_on_sigterm_with_an_end_line(tmp_path, listener):
    write_atomic(tmp_path / "tests.json", layout_json([{"testname": "t1", "status": "in_process"}]))
    run = listener(tmp_path)
    run.expect(change="record")  # running and following
    run.proc.send_signal(signal.SIGTERM)
    assert run.expect(change="end")[-1] == {"change": "end", "reason": "signal"}
    assert run.wait() == 1


def test_listen_stops_when_the_wrapper_ends(tmp_path, listener):
    write_atomic(tmp_path / "tests.json", layout_json([{"testname": "t1", "status": "in_process"}]))
    wrapper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    run = listener(tmp_path, "--wrapper-pid", str(wrapper.pid))
    run.expect(change="record")
    wrapper.stdin.close()  # the wrapper ends
    wrapper.wait(timeout=DEADLINE_S)
    assert run.expect(change="end")[-1] == {"change": "end", "reason": "wrapper ended"}
    assert run.wait() == 1


def test_listen_refuses_a_missing_folder(tmp_path):
    done = subprocess.run([str(RUNNER), "listen", str(tmp_path / "nope")], capture_output=True, text=True,
                          timeout=DEADLINE_S)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "nope" in done.stderr and "folder" in done.stderr


def test_listen_publishes_the_layout_on_the_event_stream(tmp_path, listener):
    results = tmp_path / "results"
    results.mkdir()
    sock = tmp_path / "listen.sock"
    run = listener(results, "--events-socket", str(sock))

    def socket_made():
        assert run.proc.poll() is None, f"the listener ended without an events socket: {run.proc.stderr.read()!r}"
        return sock.exists()

    # The listener makes its socket before it looks at the folder.
    wait_until(socket_made, timeout=DEADLINE_S, what="the events socket")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(sock))
    client.settimeout(DEADLINE_S)
    greeting = b""
    while not greeting.endswith(b"\n"):  # subscribed: every event from here on comes
        greeting += client.recv(1)
    assert json.loads(greeting)["event"] == "subscribed"
    try:
        records = [{"testname": "t1", "status": "in_process", "title": "First"}]
        write_atomic(results / "tests.json", layout_json(records))
        run.expect(change="record")
        append(results / "t1" / "log.txt", "hello\n")
        run.expect(change="log")
        records[0]["status"] = "failure"
        write_atomic(results / "tests.json", layout_json(records, "failure"))
        run.expect(change="end")
        assert run.wait() == 0
        out = b""
        while chunk := client.recv(1 << 16):  # the stream closes with the listener
            out += chunk
    finally:
        client.close()
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["event"], e["type"]) for e in events] == [
        ("init_task", "task"), ("start_task", "task"), ("start_section", "testcase"), ("log", "testcase"),
        ("stop_section", "testcase"), ("stop_task", "task")]
    task_seq = events[0]["seq_num"]
    assert all(e["parent_seq_num"] == task_seq for e in events[2:5])
    assert events[3]["logs"] == {"file": str(results / "t1" / "log.txt"), "begin": 0, "size": 6}
    assert events[4]["result"] == "failed" and events[5]["result"] == "failed"
