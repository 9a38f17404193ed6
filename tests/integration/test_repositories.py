"""Repository kinds against real servers: archives over HTTP from mock_backend --serve, svn
from a real svnserve on a repository made with svnadmin, and s3 from s3rver (npm). s3rver
3.x does not check V4 signatures, so a small proxy in front of it checks them as S3 does
(with a signer written here, independent of the agent's). Submissions and service code
alike; hostile archives too."""

import datetime
import hashlib
import hmac
import http.server
import io
import json
import os
import pathlib
import socketserver
import subprocess
import tarfile
import textwrap
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest

from conftest import (PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_BUGGY, PYTHON_SUBMISSION_GOOD,
                      RUNNER, SOURCE_DIR)

S3RVER = SOURCE_DIR / ".tools" / "node_modules" / ".bin" / "s3rver"


def exec_task(tmp_path, task, service, *args):
    """Runs `runner exec` on `task` with `service`; returns (exit code, payload or None, stderr)."""
    task_file = tmp_path / f"task-{time.monotonic_ns()}.json"
    task_file.write_text(json.dumps(task))
    done = subprocess.run([str(RUNNER), "exec", "--task", str(task_file), "--service", str(service), "--work-dir",
                           str(tmp_path / "work"), "--allow-schemes", "http,https,svn,s3,file", *args],
                          capture_output=True, text=True, timeout=180)
    payload = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, payload, done.stderr


def dedented(files):
    return {path: textwrap.dedent(content) for path, content in files.items()}


def zip_bytes(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


def tar_gz_bytes(files, links=()):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- http ----------------------------------------------------------------------------------

def test_http_zip_and_tar_submissions_run(tmp_path, backend, make_service):
    served = tmp_path / "served"
    served.mkdir()
    (served / "good.zip").write_bytes(zip_bytes(dedented(PYTHON_SUBMISSION_GOOD)))
    (served / "buggy.tar.gz").write_bytes(tar_gz_bytes(dedented(PYTHON_SUBMISSION_BUGGY)))
    b = backend([], "--serve", str(served))
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)

    code, payload, err = exec_task(tmp_path, {"id": "z", "repositoryUrl": f"{b.url}/files/good.zip"}, service)
    assert code == 0, err
    assert payload["isPassed"] is True and payload["isError"] is False
    # Through three redirects, and a tar.gz named by repositoryType rather than its URL.
    code, payload, err = exec_task(tmp_path, {"id": "t", "repositoryType": "http",
                                              "repositoryUrl": f"{b.url}/redirect/3/files/buggy.tar.gz"}, service)
    assert code == 1, err
    assert payload["isPassed"] is False and payload["isError"] is False


def test_http_basic_auth_redirect_limit_and_size_cap(tmp_path, backend, make_service):
    served = tmp_path / "served"
    served.mkdir()
    (served / "good.zip").write_bytes(zip_bytes(dedented(PYTHON_SUBMISSION_GOOD)))
    (served / "big.zip").write_bytes(zip_bytes({"blob.bin": os.urandom(3 * 1024 * 1024)}))
    b = backend([], "--serve", str(served), "--serve-auth", "lab:pa ss")
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    host = b.address

    code, payload, _ = exec_task(tmp_path, {"id": "a", "repositoryUrl": f"http://{host}/files/good.zip"}, service)
    assert payload["isError"] is True
    assert "refused the credentials (HTTP 401)" in payload["errorDetails"]

    code, payload, err = exec_task(tmp_path, {"id": "b", "repositoryUrl": f"http://lab:pa%20ss@{host}/files/good.zip"},
                                   service)
    assert payload["isError"] is True  # %20 is not decoded: the password is "pa%20ss"
    code, payload, err = exec_task(tmp_path, {"id": "c", "repositoryUrl": f"http://lab:pa ss@{host}/files/good.zip"},
                                   service)
    assert code == 0, (err, payload)
    assert "pa ss" not in err  # credentials never logged

    # The URL's credentials go with every hop back to the same server.
    code, payload, err = exec_task(tmp_path, {"id": "r", "repositoryUrl": f"http://lab:pa ss@{host}/redirect/2/files/good.zip"},
                                   service)
    assert code == 0, (err, payload)

    code, payload, _ = exec_task(tmp_path, {"id": "d", "repositoryUrl": f"http://lab:pa ss@{host}/redirect/6/files/good.zip"},
                                 service)
    assert payload["isError"] is True and "more than 5 redirects" in payload["errorDetails"]

    code, payload, _ = exec_task(tmp_path, {"id": "e", "repositoryUrl": f"http://lab:pa ss@{host}/files/big.zip"},
                                 service, "--max-download-mb", "1")
    assert payload["isError"] is True and "larger than 1048576 bytes" in payload["errorDetails"]
    assert "pa ss" not in payload["errorDetails"]


@pytest.mark.parametrize("archive, entry", [
    ("slip.zip", "../../../../escaped.txt"),
    ("absolute.tar.gz", "/tmp/proctor-escaped-by-absolute-path"),
    ("link.tar.gz", "out"),
])
def test_hostile_archives_are_refused_with_nothing_written_outside(tmp_path, backend, make_service, archive, entry):
    served = tmp_path / "served"
    served.mkdir()
    if archive == "slip.zip":
        (served / archive).write_bytes(zip_bytes({"calc.py": "x = 1\n", entry: "pwned\n"}))
    elif archive == "absolute.tar.gz":
        (served / archive).write_bytes(tar_gz_bytes({entry: "pwned\n"}))
    else:
        (served / archive).write_bytes(tar_gz_bytes({}, links=[(entry, "/etc")]))
    b = backend([], "--serve", str(served))
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    before = files_under(tmp_path)

    code, payload, _ = exec_task(tmp_path, {"id": "h", "repositoryUrl": f"{b.url}/files/{archive}"}, service)

    assert payload["isError"] is True
    assert f"'{entry}'" in payload["errorDetails"]
    assert "outside the target folder" in payload["errorDetails"]
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not pathlib.Path("/tmp/proctor-escaped-by-absolute-path").exists()
    # Only the agent's own work folder changed: no stray file beside anything.
    after = [p for p in files_under(tmp_path) if not p.startswith("work") and not p.startswith("task-")]
    assert after == [p for p in before if not p.startswith("work")]
    unpacked = [p for p in files_under(tmp_path / "work") if p.endswith("tree") or "/tree/" in p]
    assert unpacked == []


# ---- svn -----------------------------------------------------------------------------------

class Svnserve:
    """svnserve on a repository made with svnadmin, holding `files` under trunk/. It runs in
    inetd mode, one svnserve per connection, behind a socket that listens before the
    constructor returns: ready by construction, nothing to poll for."""

    def __init__(self, root, files, users=None):
        self.repo = root / "svnrepo"
        subprocess.run(["svnadmin", "create", str(self.repo)], check=True)
        conf = self.repo / "conf"
        if users:
            (conf / "svnserve.conf").write_text(
                "[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\nrealm = proctor-test\n")
            (conf / "passwd").write_text("[users]\n" + "".join(f"{u} = {p}\n" for u, p in users.items()))
        else:
            (conf / "svnserve.conf").write_text("[general]\nanon-access = read\n")
        staging = root / "svn-import"
        for path, content in files.items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        subprocess.run(["svn", "import", "-q", "--non-interactive", "-m", "initial", str(staging),
                        f"file://{self.repo}/trunk"], check=True)
        root_dir = str(self.repo)

        class Connection(socketserver.BaseRequestHandler):
            def handle(self):
                subprocess.run(["svnserve", "--inetd", "--root", root_dir], stdin=self.request.fileno(),
                               stdout=self.request.fileno(), check=False)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"svn://127.0.0.1:{self.server.server_address[1]}/trunk"

    def commit(self, path, content):
        checkout = self.repo.parent / f"svn-commit-{time.monotonic_ns()}"
        subprocess.run(["svn", "checkout", "-q", f"file://{self.repo}/trunk", str(checkout)], check=True)
        (checkout / path).write_text(content)
        subprocess.run(["svn", "commit", "-q", "-m", "change", str(checkout)], check=True)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def svnserve(tmp_path):
    started = []

    def start(files, users=None):
        folder = tmp_path / f"svn{len(started)}"
        folder.mkdir()
        server = Svnserve(folder, files, users)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_svn_submission_checkout_then_update(tmp_path, svnserve, make_service):
    server = svnserve(dedented(PYTHON_SUBMISSION_GOOD))
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    code, payload, err = exec_task(tmp_path, {"id": "s1", "repositoryUrl": server.url}, service)
    assert code == 0, err
    assert payload["isPassed"] is True
    assert "r1" in err

    # A new commit: the cached working copy is updated, and the new code runs.
    server.commit("calc.py", textwrap.dedent(PYTHON_SUBMISSION_BUGGY["calc.py"]))
    code, payload, err = exec_task(tmp_path, {"id": "s2", "repositoryUrl": server.url}, service)
    assert code == 1, err
    assert "r2" in err and "reused" in err
    # A pinned revision goes back.
    code, payload, err = exec_task(tmp_path, {"id": "s3", "repositoryUrl": server.url, "revision": "1"}, service)
    assert code == 0, err


def test_svn_service_code_with_credentials_never_shown(tmp_path, svnserve, make_service, make_repo):
    tests = {"tests/test_calc.py": PYTEST_SERVICE_FILES["tests/test_calc.py"]}
    server = svnserve(dedented(tests), users={"grader": "hunter2 secret"})
    submission = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(textwrap.dedent(PYTEST_SERVICE_YAML) + textwrap.dedent(f"""
        repository:
          repo_type: svn
          url: {server.url}
          username: grader
          password: hunter2 secret
        """))
    code, payload, err = exec_task(tmp_path, {"id": "c1", "repositoryUrl": f"file://{submission}"}, service)
    assert code == 0, (err, payload)
    assert payload["isPassed"] is True
    assert "hunter2" not in err
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000 and "svnrepo" not in str(path):
            assert b"hunter2" not in path.read_bytes(), path

    wrong = make_service(textwrap.dedent(PYTEST_SERVICE_YAML) + textwrap.dedent(f"""
        repository:
          repo_type: svn
          url: {server.url}
          username: grader
          password: wrong
        """))
    code, payload, err = exec_task(tmp_path, {"id": "c2", "repositoryUrl": f"file://{submission}"}, wrong)
    assert payload["isError"] is True
    # The cached working copy of the same URL is updated, and the server refuses the password.
    assert "Fetching the service's code failed: svn update" in payload["errorDetails"]
    assert "Password incorrect" in payload["errorDetails"]


# ---- s3 ------------------------------------------------------------------------------------

def sigv4_signature(secret_key, method, path, query, headers, signed, payload_hash, amz_date, region):
    """The SigV4 signature, written here independently of the agent's C++ signer."""
    date = amz_date[:8]
    canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                               for k, v in sorted(query))
    canonical = "\n".join([method, path, canonical_query,
                           "".join(f"{k}:{' '.join(headers[k].split())}\n" for k in signed), ";".join(signed),
                           payload_hash])
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = ("AWS4" + secret_key).encode()
    for part in (date, region, "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
    return hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()


class SignatureCheckingProxy:
    """A front for s3rver that checks AWS Signature V4 the way S3 does (s3rver 3.x accepts
    any V4 signature from a known access key): a request signed with the wrong secret gets
    403 SignatureDoesNotMatch; a good one is passed on to s3rver."""

    def __init__(self, upstream, accounts):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                status, body = proxy.check(self)
                if status is None:
                    request = urllib.request.Request(upstream + self.path, method="GET")
                    try:
                        with urllib.request.urlopen(request, timeout=30) as answer:
                            status, body = answer.status, answer.read()
                    except urllib.error.HTTPError as error:
                        status, body = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.accounts = accounts
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def check(self, handler):
        """(None, None) when the signature is right, else (status, error body)."""
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return 403, b"<Error><Code>AccessDenied</Code></Error>"
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        access_key, _, region, _, _ = fields["Credential"].split("/")
        if access_key not in self.accounts:
            return 403, b"<Error><Code>InvalidAccessKeyId</Code></Error>"
        signed = fields["SignedHeaders"].split(";")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path, _, query = handler.path.partition("?")
        expected = sigv4_signature(self.accounts[access_key], "GET", path, urllib.parse.parse_qsl(query), headers,
                                   signed, headers["x-amz-content-sha256"], headers["x-amz-date"], region)
        if not hmac.compare_digest(expected, fields["Signature"]):
            return 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
        return None, None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def sigv4_put(endpoint, bucket, key, body, access_key, secret_key, region="us-east-1"):
    """PUTs an object with AWS Signature V4, written here independently of the agent's signer."""
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = endpoint.split("://", 1)[1]
    path = f"/{bucket}/{urllib.parse.quote(key)}"
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = sorted(headers)
    signature = sigv4_signature(secret_key, "PUT", path, [], headers, signed, payload_hash, amz_date, region)
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    request = urllib.request.Request(endpoint + path, data=body, method="PUT", headers={
        "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
                         f"Signature={signature}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.fixture
def s3rver(tmp_path):
    """s3rver with bucket 'lab' (`upstream`, for uploads) behind SignatureCheckingProxy (`url`)."""
    if not S3RVER.exists():
        pytest.fail(f"s3rver is not installed at {S3RVER}: run scripts/install-deps.sh --with-tests")
    data = tmp_path / "s3data"
    data.mkdir()
    proc = subprocess.Popen([str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", "0", "--configure-bucket", "lab"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(50):
        line = proc.stdout.readline()
        if "listening on" in line:
            break
    else:
        proc.kill()
        raise AssertionError("s3rver did not start")
    upstream = "http://" + line.split()[-1]
    proxy = SignatureCheckingProxy(upstream, {"S3RVER": "S3RVER"})
    yield types.SimpleNamespace(url=proxy.url, upstream=upstream)
    proxy.stop()
    proc.terminate()
    proc.wait(timeout=10)


def test_s3_submission_signed_and_a_wrong_secret_refused(tmp_path, s3rver, make_service):
    sigv4_put(s3rver.upstream, "lab", "subs/good one.zip", zip_bytes(dedented(PYTHON_SUBMISSION_GOOD)), "S3RVER", "S3RVER")
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    common = ["--s3-endpoint", s3rver.url, "--s3-access-key", "S3RVER"]
    code, payload, err = exec_task(tmp_path, {"id": "s3", "repositoryUrl": "s3://lab/subs/good one.zip"}, service,
                                   *common, "--s3-secret-key", "S3RVER")
    assert code == 0, (err, payload)
    assert payload["isPassed"] is True
    assert "S3RVER" not in err

    code, payload, err = exec_task(tmp_path, {"id": "s4", "repositoryUrl": "s3://lab/subs/good one.zip"}, service,
                                   *common, "--s3-secret-key", "not-the-secret")
    assert payload["isError"] is True
    assert "refused access (HTTP 403)" in payload["errorDetails"]
    assert "not-the-secret" not in payload["errorDetails"] and "not-the-secret" not in err

    code, payload, err = exec_task(tmp_path, {"id": "s5", "repositoryUrl": "s3://lab/subs/good one.zip"}, service,
                                   "--s3-endpoint", s3rver.url, "--s3-access-key", "NOBODY", "--s3-secret-key", "S3RVER")
    assert payload["isError"] is True and "HTTP 403" in payload["errorDetails"]


def test_s3_service_code_from_the_repository_block(tmp_path, s3rver, make_service, make_repo):
    tests = dedented({"checks/tests/test_calc.py": PYTEST_SERVICE_FILES["tests/test_calc.py"]})
    sigv4_put(s3rver.upstream, "lab", "services/calc.tar.gz", tar_gz_bytes(tests), "S3RVER", "S3RVER")
    submission = make_repo(PYTHON_SUBMISSION_GOOD)
    service = make_service(textwrap.dedent(PYTEST_SERVICE_YAML) + textwrap.dedent(f"""
        repository:
          repo_type: s3
          bucket: lab/services/calc.tar.gz
          access_key: S3RVER
          secret_key: S3RVER
          endpoint: {s3rver.url}
          ot_dir: checks
        """))
    code, payload, err = exec_task(tmp_path, {"id": "b1", "repositoryUrl": f"file://{submission}"}, service)
    assert code == 0, (err, payload)
    assert payload["isPassed"] is True
