"""packaging/kubernetes/proctor-runner.yaml, checked without a cluster: its documents,
the Deployment's probes and mounts against the runner's options, and the ConfigMap's
runner.yaml read by the runner itself."""

import re

import pytest

from conftest import PACKAGING, parse_with_runner

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed")

MANIFEST = PACKAGING / "kubernetes" / "proctor-runner.yaml"


def documents():
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    return {d["kind"]: d for d in docs}


def container():
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    (only,) = pod["containers"]  # one agent per pod
    return pod, only


def argument(c, name):
    """The value of --name=VALUE in the container's args."""
    values = [a.split("=", 1)[1] for a in c["args"] if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, c["args"])
    return values[0]


def test_every_document_is_named_and_typed():
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Secret"]
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"], d
        assert "namespace" not in d["metadata"]  # chosen at `kubectl apply -n`


def test_a_fleet_of_agents():
    deployment = documents()["Deployment"]
    assert deployment["spec"]["replicas"] == 4
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    _, c = container()
    assert argument(c, "concurrent") == "2"
    assert argument(c, "work-dir") == "/var/lib/proctor"


def test_probes_ask_the_metrics_endpoint_on_the_container_port():
    _, c = container()
    port = int(argument(c, "metrics-address").rsplit(":", 1)[1])
    assert argument(c, "metrics-address").startswith("0.0.0.0:")  # reachable by the kubelet
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports.get(get["port"], get["port"]) == port, probe


def test_the_config_map_is_the_file_the_runner_reads(runner, tmp_path):
    docs = documents()
    pod, c = container()
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mount = mounts[argument(c, "config")]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    text = docs["ConfigMap"]["data"][mount["subPath"]]
    done = parse_with_runner(runner, text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^backend-url: https://CHANGE-ME\.invalid$", text, re.M)


def test_secrets_come_from_the_secret():
    docs = documents()
    _, c = container()
    secret = docs["Secret"]
    assert set(secret["stringData"]) == {"RUNNER_PASSWORD"}
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in c["envFrom"]
    assert "password" not in yaml.safe_load(docs["ConfigMap"]["data"]["runner.yaml"])


def test_stopping_and_security():
    pod, c = container()
    config = yaml.safe_load(documents()["ConfigMap"]["data"]["runner.yaml"])
    assert pod["terminationGracePeriodSeconds"] > config["shutdown-grace"] + config["kill-grace"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The image's numeric USER (packaging/Dockerfile).
    user = re.search(r"^USER (\d+)", (PACKAGING / "Dockerfile").read_text(), re.M).group(1)
    assert pod["securityContext"]["runAsUser"] == int(user)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # With a read-only root, the agent and its services write only here.
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/proctor", "/tmp"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= c["resources"][kind].keys()
