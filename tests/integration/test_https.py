"""The agent's backend client over HTTPS against mock_backend --tls-cert/--tls-key: a
certificate from a CA given with --ca-file is accepted, an untrusted one or one for
another host name is refused, --insecure accepts anything, and plain HTTP to the TLS
port fails cleanly. Certificates are made with the openssl CLI for each test session."""

import json
import shutil
import ssl
import subprocess
import urllib.request
import uuid

import pytest

from conftest import MOCK_BACKEND, PYTEST_SERVICE_FILES, PYTEST_SERVICE_YAML, PYTHON_SUBMISSION_GOOD

OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl CLI (Debian package openssl)")

# Its own configuration, so the system's openssl.cnf defaults cannot change the extensions.
OPENSSL_CONFIG = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[local]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[other]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
"""

# A request the agent never sends: everything else in the request log came from the agent.
TEST_ONLY_TARGETS = ("/admin/", "/results")


def openssl(folder, *args):
    done = subprocess.run([OPENSSL, *args], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed:\n{done.stderr}"


def new_key(folder, name):
    openssl(folder, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")


def self_signed(folder, name, subject, extensions):
    new_key(folder, name)
    openssl(folder, "req", "-config", "openssl.cnf", "-new", "-x509", "-key", f"{name}.key", "-subj", subject,
            "-days", "2", "-extensions", extensions, "-out", f"{name}.pem")


def signed_by_ca(folder, name, subject, extensions, serial):
    new_key(folder, name)
    openssl(folder, "req", "-config", "openssl.cnf", "-new", "-key", f"{name}.key", "-subj", subject,
            "-out", f"{name}.csr")
    openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
            str(serial), "-days", "2", "-extfile", "openssl.cnf", "-extensions", extensions, "-out", f"{name}.pem")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throwaway CA; certificates it signed for 127.0.0.1/localhost ("local") and for
    other.example only ("other"); and an unrelated self-signed one ("self")."""
    folder = tmp_path_factory.mktemp("certs")
    (folder / "openssl.cnf").write_text(OPENSSL_CONFIG)
    self_signed(folder, "ca", "/CN=Proctor test CA", "ca")
    signed_by_ca(folder, "local", "/CN=127.0.0.1", "local", 1)
    signed_by_ca(folder, "other", "/CN=other.example", "other", 2)
    self_signed(folder, "self", "/CN=127.0.0.1", "local")
    return folder


def tls_backend(backend, certs, name, tasks=()):
    """A mock_backend speaking HTTPS only, with the certificate `name` from `certs`."""
    return backend(list(tasks), "--tls-cert", str(certs / f"{name}.pem"), "--tls-key", str(certs / f"{name}.key"))


def https_get(b, path):
    """GET over HTTPS to the test's own backend, whichever certificate it has."""
    context = ssl.create_default_context()
    context.check_hostname = False  # the test reads what the backend recorded; trust is the agent's problem
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://{b.address}{path}", timeout=10, context=context) as answer:
        return json.loads(answer.read() or b"null")


def agent_requests(b):
    return [r for r in https_get(b, "/admin/requests") if not r["target"].startswith(TEST_ONLY_TARGETS)]


def task_for(make_repo):
    repo = make_repo(PYTHON_SUBMISSION_GOOD)
    return {"id": str(uuid.uuid4()), "repositoryUrl": f"file://{repo}", "branch": "main"}


def port_of(b):
    return b.address.rsplit(":", 1)[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_certificate_from_the_ca_file_is_accepted_and_the_result_recorded(
        host, certs, backend, make_repo, make_service, run_runner):
    task = task_for(make_repo)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = tls_backend(backend, certs, "local", [task])

    done = run_runner("--backend-url", f"https://{host}:{port_of(b)}", "--once", "--service", str(service),
                      "--ca-file", str(certs / "ca.pem"))

    assert done.returncode == 0, done.stderr
    [payload] = https_get(b, "/results")
    assert payload["id"] == task["id"]
    assert payload["isPassed"] is True and payload["isError"] is False
    assert [r["method"] for r in agent_requests(b)] == ["GET", "POST"]  # both arrived over TLS


def test_certificate_without_a_trusted_ca_is_refused(certs, backend, make_repo, make_service, run_runner):
    task = task_for(make_repo)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = tls_backend(backend, certs, "local", [task])

    done = run_runner("--backend-url", f"https://{b.address}", "--once", "--service", str(service), timeout=30)

    assert done.returncode == 3, done.stderr
    assert "TLS handshake" in done.stderr and "certificate verify failed" in done.stderr, done.stderr
    assert agent_requests(b) == []  # not even the task request went out
    assert https_get(b, "/results") == []
    assert "TLS handshake with 127.0.0.1:" in b.stderr_path.read_text()  # the server saw and dropped it


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_certificate_for_another_host_name_is_refused_even_from_a_trusted_ca(
        host, certs, backend, make_repo, make_service, run_runner):
    task = task_for(make_repo)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = tls_backend(backend, certs, "other", [task])  # same CA as the accepted "local" certificate

    done = run_runner("--backend-url", f"https://{host}:{port_of(b)}", "--once", "--service", str(service),
                      "--ca-file", str(certs / "ca.pem"), timeout=30)

    assert done.returncode == 3, done.stderr
    assert "TLS handshake" in done.stderr and "certificate verify failed" in done.stderr, done.stderr
    assert agent_requests(b) == []
    assert https_get(b, "/results") == []


def test_insecure_accepts_a_self_signed_certificate(certs, backend, make_repo, make_service, run_runner):
    task = task_for(make_repo)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = tls_backend(backend, certs, "self", [task])
    refused = run_runner("--backend-url", f"https://{b.address}", "--once", "--service", str(service), timeout=30)
    assert refused.returncode == 3, refused.stderr  # the certificate really is untrusted

    done = run_runner("--backend-url", f"https://{b.address}", "--once", "--service", str(service), "--insecure")

    assert done.returncode == 0, done.stderr
    [payload] = https_get(b, "/results")
    assert payload["id"] == task["id"] and payload["isPassed"] is True


def test_plain_http_to_the_tls_port_fails_at_once_and_the_server_keeps_serving(
        certs, backend, make_repo, make_service, run_runner):
    task = task_for(make_repo)
    service = make_service(PYTEST_SERVICE_YAML, PYTEST_SERVICE_FILES)
    b = tls_backend(backend, certs, "local", [task])

    # Well under the agent's 30 s request deadline: the server hangs up on the first bytes.
    done = run_runner("--backend-url", f"http://{b.address}", "--once", "--service", str(service), timeout=20)

    assert done.returncode == 3, done.stderr
    assert "cannot reach the backend" in done.stderr, done.stderr
    assert "TLS handshake with 127.0.0.1:" in b.stderr_path.read_text()
    assert agent_requests(b) == []
    assert https_get(b, "/admin/stats")["tasks_served"] == 0  # still up, task still queued


def test_mock_backend_refuses_a_key_that_is_not_the_certificates(certs):
    done = subprocess.run([str(MOCK_BACKEND), "--port", "0", "--tls-cert", str(certs / "local.pem"),
                           "--tls-key", str(certs / "other.key")], capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert f"TLS key {certs / 'other.key'}" in done.stderr, done.stderr
    assert done.stdout == ""  # never claimed to be listening
