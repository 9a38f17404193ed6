"""packaging/Dockerfile, checked without a Docker engine: its instructions parsed, every
stage on Debian 12, a non-root final user, and every apt package it names available in
Debian 12 (`apt-cache policy` shows a candidate)."""

import re
import shlex
import subprocess

import pytest

from conftest import PACKAGING, need_tool

DOCKERFILE = PACKAGING / "Dockerfile"


def instructions():
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    joined, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the last instruction ends with a backslash"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in joined]


def stages():
    """Each stage's instructions, in order."""
    result = []
    for name, args in instructions():
        if name == "FROM":
            result.append([])
        assert result or name == "ARG", f"{name} before the first FROM"
        if result:
            result[-1].append((name, args))
    return result


def arg_defaults(stage):
    return {m.group(1): m.group(2).strip('"') for name, args in stage if name == "ARG"
            if (m := re.match(r'(\w+)=(.*)', args))}


def apt_packages():
    """Every package named by an `apt-get install` (ARG defaults expanded; local .debs and
    options left out)."""
    names = set()
    for stage in stages():
        defaults = arg_defaults(stage)
        for name, args in stage:
            if name != "RUN":
                continue
            expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), args)
            for command in re.split(r"&&|;|\|\|", expanded):
                words = shlex.split(command)
                if words[:2] != ["apt-get", "install"]:
                    continue
                names.update(w for w in words[2:] if not w.startswith(("-", "/", "./")))
    return names


def test_every_stage_is_debian_12():
    froms = [args for stage in stages() for name, args in stage if name == "FROM"]
    assert len(froms) == 2  # build, runtime
    for args in froms:
        assert re.match(r"debian:bookworm(-slim)?(@sha256:[0-9a-f]+)?(\s+AS\s+\w+)?$", args, re.I), args


def test_the_runtime_stage_is_the_package_run_as_non_root():
    build, runtime = stages()
    assert ("FROM", "debian:bookworm-slim AS build") in build
    copies = [args for name, args in runtime if name == "COPY"]
    assert any(a.startswith("--from=build ") and a.endswith(".deb") for a in copies), copies
    users = [args for name, args in runtime if name == "USER"]
    assert users, "no USER: the agent would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), user
    assert user.isdigit(), "a numeric uid, so that Kubernetes' runAsNonRoot can check it"
    assert dict(runtime)["ENTRYPOINT"] == '["/usr/bin/runner"]'
    assert dict(runtime)["WORKDIR"] == "/var/lib/proctor"


def test_the_health_check_asks_the_metrics_endpoint():
    runtime = stages()[-1]
    env = " ".join(args for name, args in runtime if name == "ENV")
    assert "RUNNER_METRICS_ADDRESS=0.0.0.0:9310" in env
    assert "RUNNER_WORK_DIR=/var/lib/proctor" in env
    check = dict(runtime)["HEALTHCHECK"]
    assert "http://127.0.0.1:9310/healthz" in check
    assert "curl" in apt_packages()  # the health check's tool is installed


def test_every_apt_package_exists_in_debian_12():
    need_tool("apt-cache")
    names = sorted(apt_packages())
    assert {"ca-certificates", "curl", "python3-pytest"} <= set(names)
    sources = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True).stdout
    if not re.search(r"^\s+release .*n=bookworm,.*c=main", sources, re.M):
        pytest.skip("apt has no Debian 12 (bookworm) main package list: run apt-get update")
    out = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True, check=True).stdout
    candidates = dict(re.findall(r"^(\S+):\n(?:  .*\n)*?  Candidate: (\S+)", out, re.M))
    missing = [n for n in names if candidates.get(n, "(none)") == "(none)"]
    assert not missing, f"not in Debian 12: {missing}"


def test_the_build_context_leaves_out_build_trees():
    ignore = (PACKAGING / "Dockerfile.dockerignore").read_text().split()
    assert "build*" in ignore and ".git" in ignore
