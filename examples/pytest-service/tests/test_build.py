import subprocess


def test_successful_make_clean(project_dir):
    subprocess.run(["make", "-s"], cwd=project_dir, check=True, capture_output=True)
    subprocess.run(["make", "-s", "clean"], cwd=project_dir, check=True)
    assert not (project_dir / "wc").exists()


def test_builds_without_warnings(project_dir):
    subprocess.run(["make", "-s", "clean"], cwd=project_dir, check=True)
    result = subprocess.run(["make"], cwd=project_dir, capture_output=True, text=True)
    assert result.returncode == 0
    assert "warning" not in result.stderr
