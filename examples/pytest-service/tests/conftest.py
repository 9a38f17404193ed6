import os
import pathlib
import subprocess

import pytest


@pytest.fixture(scope="session")
def project_dir():
    return pathlib.Path(os.environ["OT_REPOSITORY_DIR"])


@pytest.fixture(scope="session")
def wc_binary(project_dir):
    subprocess.run(["make", "-s", "clean"], cwd=project_dir, check=True)
    subprocess.run(["make", "-s"], cwd=project_dir, check=True, capture_output=True)
    return project_dir / "wc"


def run_wc(binary, text):
    result = subprocess.run([str(binary)], input=text.encode(), capture_output=True, timeout=10)
    return result.returncode, result.stdout.decode().split()
