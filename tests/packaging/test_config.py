"""packaging/runner.yaml, the default /etc/proctor/runner.yaml: the runner reads it, it
documents every option a user would set, and an unconfigured agent says what is wrong."""

import os
import re
import signal
import subprocess
import time

from conftest import PACKAGING, parse_with_runner, runner_options

CONFIG = PACKAGING / "runner.yaml"
# Not in the file on purpose: secrets (runner.env), and what only makes sense per command.
NOT_IN_CONFIG = {"help", "version", "config", "print-config", "password", "s3-secret-key", "once",
                 "runtime", "no-events", "no-results-layout"}
COMMENTED_KEY = re.compile(r"^# ([a-z0-9-]+): (\S+)")


def commented_settings():
    """The `# key: value` examples of the file, uncommented."""
    return [m.groups() for line in CONFIG.read_text().splitlines() if (m := COMMENTED_KEY.match(line))]


def test_the_shipped_file_parses(runner, tmp_path):
    done = parse_with_runner(runner, CONFIG.read_text(), tmp_path)
    assert done.returncode == 0, done.stderr


def test_every_example_is_a_valid_setting(runner, tmp_path):
    settings = commented_settings()
    assert len(settings) > 30
    text = "".join(f"{key}: {value}\n" for key, value in settings)
    done = parse_with_runner(runner, text, tmp_path)
    assert done.returncode == 0, done.stderr


def test_every_user_option_is_documented(runner):
    documented = {key for key, _ in commented_settings()} | {"backend-url"}
    missing = runner_options(runner) - documented - NOT_IN_CONFIG
    assert not missing, f"add these to packaging/runner.yaml: {sorted(missing)}"


def test_no_secret_in_the_file():
    # Neither as an example nor set: a secret belongs in RUNNER_PASSWORD or RUNNER_S3_SECRET_KEY.
    assert not re.search(r"^(#\s*)?(password|s3-secret-key)\s*:", CONFIG.read_text(), re.M)
    assert re.search(r"^backend-url: https://CHANGE-ME\.invalid$", CONFIG.read_text(), re.M)


def test_an_unconfigured_agent_names_the_placeholder(runner, tmp_path):
    # The daemon with the shipped file, as the unit starts it: its log must point at the
    # placeholder rather than fail somewhere obscure.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(runner), "--config", str(CONFIG), "--work-dir", str(tmp_path / "state"),
                                 "--no-events"], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "CHANGE-ME.invalid" not in log.read_text(errors="replace"):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "CHANGE-ME.invalid" in text, text
    assert code == 0, text
