"""Live results through the real agent: the results layout written while a service runs,
and the event stream to `runner subscribe` next to a subscriber that never reads.
Every wait is on something the agent wrote (a record, an event), never on time passing."""

import json
import pathlib
import queue
import signal
import socket
import textwrap
import threading
import uuid

from conftest import RUNNER, SYSTEM_PYTHON, wait_for_line

# A service that writes three report files, one at a time, and goes on to the next only
# once the agent has made a record of the last one: it exits 0 only if records appeared
# while it was still running.
THREE_REPORTS_SERVICE = f"""\
    cmd: {SYSTEM_PYTHON} service.py
    timeout: 60
    reports: [out/TEST-*.xml]
"""
THREE_REPORTS_SCRIPT = """\
    import json, os, pathlib, sys, time
    results = pathlib.Path(os.environ["OT_RESULTS_DIR"])
    out = pathlib.Path("out")
    out.mkdir()

    def record_listed(title):
        try:
            tests = json.loads((results / "tests.json").read_text())
        except (OSError, ValueError):
            return False  # not there yet
        return any(record.get("title") == title for record in tests["test_records"])

    for i in (1, 2, 3):
        (out / f"TEST-Class{i}.xml").write_text(
            f'<testsuite name="Class{i}"><testcase classname="Class{i}" name="test_{i}" time="0.1"/></testsuite>')
        print(f"wrote report {i}", flush=True)
        deadline = time.monotonic() + 30
        while not record_listed(f"Class{i}.test_{i}"):
            if time.monotonic() > deadline:
                print(f"no record of report {i} while running", flush=True)
                sys.exit(7)
            time.sleep(0.01)  # polling the agent's file for the condition
        print(f"record {i} seen while running", flush=True)
"""


def test_records_appear_while_the_service_runs(backend, make_repo, make_service, run_runner, tmp_path):
    repo = make_repo({"README": "submission\n"})
    service = make_service(THREE_REPORTS_SERVICE, {"service.py": THREE_REPORTS_SCRIPT})
    b = backend([{"id": "live-1", "repositoryUrl": f"file://{repo}", "branch": "main"}])

    done = run_runner("--backend-url", b.url, "--once", "--service", str(service))

    assert done.returncode == 0, done.stderr
    [payload] = b.results()
    assert payload["isPassed"] is True and payload["isError"] is False, payload  # exit 7 would be an error
    assert len(payload["testResults"]) == 3

    layout = tmp_path / "work" / "results" / "live-1"
    tests = json.loads((layout / "tests.json").read_text())
    assert tests["test_suite"] == {"status": "success", "links": [{"url": f"file://{repo}", "name": "submission"}]}
    assert [(r["testname"], r["status"]) for r in tests["test_records"]] == [
        ("fetch", "success"), ("service", "success"),
        ("class1_test_1", "success"), ("class2_test_2", "success"), ("class3_test_3", "success")]
    for record in tests["test_records"]:
        for name in ("output.json", "log.txt", "summary.txt"):
            assert (layout / record["testname"] / name).is_file(), (record["testname"], name)
    service_log = (layout / "service" / "log.txt").read_text()
    assert "record 3 seen while running" in service_log
    assert tests["test_records"][0]["test_input"]["repository"] == f"file://{repo}"
    assert json.loads((layout / "class2_test_2" / "output.json").read_text())["classname"] == "Class2"
    assert (layout / "service" / "summary.txt").read_text().startswith("exited with code 0")


class LineReader:
    """Lines of a stream, read on a thread, taken with a deadline."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, predicate, limit=60):
        """Events read until one satisfies `predicate` (included)."""
        events = []
        while True:
            line = self.lines.get(timeout=limit)
            assert line is not None, f"the stream ended; read {len(events)} events"
            event = json.loads(line)
            events.append(event)
            if predicate(event):
                return events


FILES = 12
CASES = 1000


def flood_script(go_dir):
    # 12 report files of 1,000 cases: 24,000 testcase events, more than a subscriber's
    # queue (10,000) and its socket buffers hold. The test paces the files by the
    # reading subscriber, so only the one that never reads falls behind.
    return textwrap.dedent(f"""\
        import pathlib, sys, time
        go = pathlib.Path({str(go_dir)!r})
        out = pathlib.Path("out")
        out.mkdir()
        for i in range({FILES}):
            cases = "".join(f'<testcase classname="F{{i}}" name="test_{{j}}" time="0.001"/>' for j in range({CASES}))
            (out / f"TEST-F{{i}}.xml").write_text(f'<testsuite name="F{{i}}">{{cases}}</testsuite>')
            deadline = time.monotonic() + 60
            while not (go / str(i)).exists():
                if time.monotonic() > deadline:
                    sys.exit(7)
                time.sleep(0.005)  # polling for the test's go-ahead
    """)


def test_a_stuck_subscriber_is_dropped_and_the_reading_one_gets_every_event(
        backend, make_repo, make_service, start_runner, tmp_path):
    repo = make_repo({"README": "submission\n"})
    go_dir = tmp_path / "go"
    go_dir.mkdir()
    service = make_service(f"cmd: {SYSTEM_PYTHON} flood.py\ntimeout: 120\nreports: [out/TEST-*.xml]\n",
                           {"flood.py": flood_script(go_dir)})
    noop = make_service("cmd: true\ntimeout: 30\nvalid_exit_codes: [0]\n")
    services = tmp_path / "services"
    services.mkdir()
    (services / "flood").symlink_to(service)
    (services / "noop").symlink_to(noop)
    b = backend([])
    sock = tmp_path / "ev.sock"
    agent = start_runner("--backend-url", b.url, "--services", str(services), "--events-socket", str(sock))
    wait_for_line(agent.stderr, "events at")
    assert (sock.stat().st_mode & 0o777) == 0o600

    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.connect(str(sock))  # and never reads until the end
    subscriber = __import__("subprocess").Popen([str(RUNNER), "subscribe", "--socket", str(sock)],
                                                stdout=__import__("subprocess").PIPE, text=True)
    reader = LineReader(subscriber.stdout)
    try:
        # Warm-up tasks until the subscriber sees one end: from then on it is surely subscribed.
        for attempt in range(10):
            warm = f"warm-{attempt}"
            b.post("/admin/tasks", [{"id": warm, "repositoryUrl": f"file://{repo}", "service": "noop"}])
            try:
                reader.until(lambda e, w=warm: e["event"] == "stop_task" and e["id"] == w, limit=10)
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("the subscriber never saw a task end")

        flood_id = str(uuid.uuid4())
        b.post("/admin/tasks", [{"id": flood_id, "repositoryUrl": f"file://{repo}", "service": "flood"}])
        events = reader.until(lambda e: e["event"] == "init_task" and e["id"] == flood_id)[-1:]
        for i in range(FILES):
            events += reader.until(lambda e, i=i: e["event"] == "stop_section" and e.get("name") == f"F{i}.test_{CASES - 1}")
            (go_dir / str(i)).touch()
        events += reader.until(lambda e: e["event"] == "stop_task" and e["id"] == flood_id)

        # Every event of the task, in order, nested task > phase > testcase.
        kinds = [(e["event"], e["type"]) for e in events]
        assert kinds[:5] == [("init_task", "task"), ("start_task", "task"), ("start_section", "phase"),
                             ("stop_section", "phase"), ("start_section", "phase")]
        assert kinds[-2:] == [("stop_section", "phase"), ("stop_task", "task")]
        task_seq = events[0]["seq_num"]
        service_seq = events[4]["seq_num"]
        assert all(e["parent_seq_num"] == task_seq for e in events[2:5] + events[-2:-1])
        cases = events[5:-2]
        assert len(cases) == 2 * FILES * CASES
        names = []
        for start, stop in zip(cases[0::2], cases[1::2]):
            assert (start["event"], stop["event"]) == ("start_section", "stop_section")
            assert start["seq_num"] == stop["seq_num"] and start["parent_seq_num"] == service_seq
            assert stop["result"] == "passed"
            names.append(stop["name"])
        assert names == [f"F{i}.test_{j}" for i in range(FILES) for j in range(CASES)]
        seqs = [e["seq_num"] for e in cases[0::2]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert events[-1]["result"] == "passed"

        # The stuck subscriber was dropped: after what its socket buffer held, the stream ends.
        stuck.settimeout(30)
        received = b""
        while chunk := stuck.recv(1 << 16):
            received += chunk
        lines = received.decode().splitlines()
        assert lines, "the stuck subscriber got nothing at all"
        complete = [json.loads(line) for line in lines[:-1]]
        assert all("event" in e for e in complete)
        assert len(complete) < 2 * FILES * CASES
    finally:
        stuck.close()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        subscriber.wait(timeout=30)  # the agent closes the stream when it stops

    assert subscriber.returncode == 0
    flood = [r for r in b.results() if r["id"] == flood_id]
    assert len(flood) == 1 and flood[0]["isPassed"] is True, flood
