"""Shared helpers for the packaging tests: where the sources and the built runner are, and
the runner's own parsing of a config file (the one reader that counts)."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("PROCTOR_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
BUILD_DIR = pathlib.Path(os.environ.get("PROCTOR_BUILD_DIR", SOURCE_DIR / "build"))
PACKAGING = SOURCE_DIR / "packaging"
RUNNER = BUILD_DIR / "agent" / "runner"

# A JUnit report for `runner convert`: the quickest command that reads --config and exits.
TINY_REPORT = '<testsuite name="s" tests="1"><testcase classname="c" name="t"/></testsuite>\n'


def need_tool(name):
    """Skips (naming the Debian package's tool) when `name` is not installed."""
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed")


@pytest.fixture(scope="session")
def runner():
    if not RUNNER.is_file():
        pytest.skip(f"no runner at {RUNNER}: build first (PROCTOR_BUILD_DIR)")
    return RUNNER


def runner_options(runner_path):
    """The long options `runner --help` lists, without dashes."""
    text = subprocess.run([str(runner_path), "--help"], capture_output=True, text=True, check=True).stdout
    return {m.group(1) for m in re.finditer(r"--([a-z0-9][a-z0-9-]*)", text)}


def parse_with_runner(runner_path, config_text, tmp_path):
    """Runs `runner --config FILE convert REPORT`: the runner parses FILE whole and
    checks every value as it would at start-up. Returns the CompletedProcess."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    report = tmp_path / "report.xml"
    report.write_text(TINY_REPORT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return subprocess.run([str(runner_path), "--config", str(config), "convert", str(report)],
                          capture_output=True, text=True, env=env, timeout=30)


def systemd_verify(root):
    """`systemd-analyze verify` of proctor-runner.service as installed under `root`, so
    that ExecStart's /usr/bin/runner resolves there. The host's own units are copied in
    beside it (never over it): the default dependencies (sysinit.target, ...) must exist.
    Returns the tool's output, which must be empty: bad values are only warnings."""
    need_tool("systemd-analyze")
    units = root / "lib" / "systemd" / "system"
    for host_units in (pathlib.Path("/lib/systemd/system"), pathlib.Path("/usr/lib/systemd/system")):
        if host_units.is_dir():
            shutil.copytree(host_units, units, symlinks=True, dirs_exist_ok=True,
                            ignore=lambda _dir, names: [n for n in names if n.startswith("proctor-")])
            break
    done = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "proctor-runner.service"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).strip()
