"""packaging/proctor-runner.service: what the agent relies on, and `systemd-analyze
verify` on the files `cmake --install` lays out (the package's own layout)."""

import configparser
import os
import re
import subprocess

from conftest import BUILD_DIR, PACKAGING, systemd_verify

UNIT = PACKAGING / "proctor-runner.service"


def service():
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_agent_talks_to_systemd():
    s = service()
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["WatchdogSec"] == "60"
    assert s["ExecStart"].split()[:3] == ["/usr/bin/runner", "--config", "/etc/proctor/runner.yaml"]
    assert s["StateDirectory"] == "proctor"  # the runner's default --work-dir ($STATE_DIRECTORY)
    assert s["EnvironmentFile"] == "-/etc/proctor/runner.env"
    assert s["User"] == s["Group"] == "proctor"


def test_stopping_leaves_time_for_the_grace_periods():
    s = service()
    assert s["KillMode"] == "mixed"  # SIGTERM to the agent only: it stops its own trees
    # --shutdown-grace 30 + --kill-grace 10 (the defaults in packaging/runner.yaml), then posting.
    assert int(s["TimeoutStopSec"]) >= 30 + 10 + 30
    assert s["Restart"] == "on-failure"


def test_hardened_but_able_to_build_and_run_tests():
    s = service()
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
                "ProtectHostname", "RestrictSUIDSGID", "RestrictRealtime", "RestrictNamespaces",
                "LockPersonality"):
        assert s[key] == "yes", key
    assert s["ProtectSystem"] == "strict"
    assert s["CapabilityBoundingSet"] == ""
    assert s["SystemCallArchitectures"] == "native"
    assert s["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]
    assert s["UMask"] == "0027"
    # JITs in test code need W+X memory.
    assert not re.search(r"^MemoryDenyWriteExecute", UNIT.read_text(), re.M)


def test_systemd_analyze_verify_on_the_installed_files(runner, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["cmake", "--install", str(BUILD_DIR), "--prefix", "/usr"], check=True, capture_output=True,
                   env=dict(os.environ, DESTDIR=str(root)))
    assert (root / "usr/bin/runner").is_file()
    assert (root / "etc/proctor/runner.yaml").is_file()
    documentation = UNIT.read_text().split("Documentation=file:", 1)[1].split()[0]
    assert (root / documentation.lstrip("/")).is_file()
    assert systemd_verify(root) == ""
