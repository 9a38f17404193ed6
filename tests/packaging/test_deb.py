"""The Debian package: made with CPack from the build in PROCTOR_BUILD_DIR (or taken from
PROCTOR_DEB, e.g. scripts/package.sh's), then checked without installing it on this
machine: its files, its control fields, the runner and the unit as extracted, and the
maintainer scripts run against stubs."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, SOURCE_DIR, need_tool, systemd_verify

PACKAGE = "proctor-runner"
FILES = {"./usr/bin/runner", "./lib/systemd/system/proctor-runner.service", "./etc/proctor/runner.yaml",
         "./usr/share/doc/proctor-runner/README.md"}


def run(*command, **kwargs):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=True, **kwargs).stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.environ.get("PROCTOR_DEB"):
        return pathlib.Path(os.environ["PROCTOR_DEB"])
    for tool in ("cpack", "dpkg-shlibdeps", "file"):  # CPack's shlibdeps step runs the last two
        need_tool(tool)
    config = BUILD_DIR / "CPackConfig.cmake"
    if not config.is_file():
        pytest.skip(f"{config} is missing: configure the build first")
    out = tmp_path_factory.mktemp("deb")
    run("cpack", "-G", "DEB", "--config", config, "-B", out, cwd=BUILD_DIR)
    (made,) = out.glob(f"{PACKAGE}_*.deb")
    return made


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    """The package's files, extracted."""
    where = tmp_path_factory.mktemp("root")
    run("dpkg-deb", "-x", deb, where)
    return where


@pytest.fixture(scope="module")
def control(deb, tmp_path_factory):
    """The control archive: control, conffiles, maintainer scripts."""
    where = tmp_path_factory.mktemp("control") / "DEBIAN"
    run("dpkg-deb", "-e", deb, where)
    return where


def field(deb, name):
    return run("dpkg-deb", "-f", deb, name).strip()


def test_the_files(deb):
    listing = run("dpkg-deb", "-c", deb).splitlines()
    entries = {line.split()[-1]: line.split()[0] for line in listing}
    assert FILES <= entries.keys(), listing
    assert entries["./usr/bin/runner"] == "-rwxr-xr-x"
    assert entries["./etc/proctor/runner.yaml"] == "-rw-r--r--"
    assert all(" root/root " in line for line in listing)


def test_the_control_fields(deb, root):
    assert field(deb, "Package") == PACKAGE
    assert field(deb, "Architecture") == run("dpkg", "--print-architecture").strip()
    version = field(deb, "Version")
    assert run(root / "usr/bin/runner", "--version").strip() == f"runner (proctor) {version}"
    depends = field(deb, "Depends")
    names = {re.match(r"[^\s(|]+", d.strip()).group(0) for d in depends.split(",")}
    assert {"adduser", "subversion", "libc6"} <= names, depends
    assert "python3-pytest" in field(deb, "Recommends")
    # Every shared library the runner loads, linked or dlopen'ed, comes from a package it
    # depends on.
    for package in library_packages(root / "usr/bin/runner") | dlopened_packages():
        assert package in names, f"{package} is missing from Depends: {depends}"


def library_packages(binary):
    """The packages of the libraries `binary` links directly (its DT_NEEDED entries)."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", run("readelf", "-d", binary))
    found_at = {}  # soname -> path: "SONAME => PATH (ADDRESS)", the loader's "PATH (ADDRESS)"
    for words in (line.split() for line in run("ldd", binary).splitlines()):
        if len(words) >= 3 and words[1] == "=>" and words[2].startswith("/"):
            found_at[words[0]] = words[2]
        elif words and words[0].startswith("/"):
            found_at[os.path.basename(words[0])] = words[0]
    return set().union(*(owners(found_at[soname]) for soname in needed))


def dlopened_packages():
    """The packages of the libraries the sources dlopen: dpkg-shlibdeps cannot see those."""
    sonames = {m for source in SOURCE_DIR.glob("*/*.cpp")
               for m in re.findall(r'dlopen\("([^"]+)"', source.read_text(errors="replace"))}
    assert sonames, "no dlopen found: is SOURCE_DIR right?"
    cache = run("/sbin/ldconfig", "-p")
    packages = set()
    for soname in sonames:
        path = re.search(rf"^\s*{re.escape(soname)} \(.*\) => (\S+)", cache, re.M)
        assert path, f"{soname} is not installed here"
        packages |= owners(path.group(1))
    return packages


def owners(path):
    """The package that owns `path` (under one of its /usr-merged names)."""
    real = os.path.realpath(path)
    for candidate in dict.fromkeys((path, real, re.sub(r"^/usr", "", real), "/usr" + real)):
        found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            return {found.stdout.split(":")[0]}
    raise AssertionError(f"no package owns {path}")


def test_the_config_is_a_conffile(control):
    assert (control / "conffiles").read_text().split() == ["/etc/proctor/runner.yaml"]


def test_the_unit_verifies_against_the_package(root, tmp_path):
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    assert systemd_verify(copy) == ""


def test_the_package_installs_on_debian_12(deb):
    # A simulation: apt resolves the Depends against the archive and installs nothing.
    need_tool("apt-get")
    done = subprocess.run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "install", str(deb)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^Inst {PACKAGE} ", done.stdout, re.M), done.stdout


# --- The maintainer scripts, run with stubs for the commands that change the system. ---

# deluser and userdel too: a script that removed the user would show in the calls.
STUBS = ("adduser", "deb-systemd-helper", "deb-systemd-invoke", "deluser", "systemctl", "userdel")


@pytest.fixture
def scripts(control, tmp_path):
    """run(script, *args, user_exists=False, systemd=True) -> the stubs' calls, one a line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in STUBS:
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (bin_dir / name).chmod(0o755)
    systemd_dir = tmp_path / "run-systemd-system"
    state = tmp_path / "var-lib-proctor"

    def run_script(script, *args, user_exists=False, systemd=True):
        getent = bin_dir / "getent"
        getent.write_text(f"#!/bin/sh\nexit {0 if user_exists else 2}\n")
        getent.chmod(0o755)
        if systemd:
            systemd_dir.mkdir(exist_ok=True)
        elif systemd_dir.exists():
            systemd_dir.rmdir()
        text = (control / script).read_text()
        # The only paths the scripts touch outside the stubs, moved into tmp_path.
        text = text.replace("/run/systemd/system", str(systemd_dir)).replace("rm -rf /var/lib/proctor",
                                                                            f"rm -rf {state}")
        copy = tmp_path / script
        copy.write_text(text)
        log.write_text("")
        subprocess.run(["sh", "-e", str(copy), *args], check=True, capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"))
        return log.read_text()

    run_script.state = state
    return run_script


def test_the_scripts_are_valid_sh(control):
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(control / script, os.X_OK), script
        subprocess.run(["sh", "-n", str(control / script)], check=True)


def test_postinst_first_install(scripts):
    calls = scripts("postinst", "configure", "")
    assert "adduser --system --group --home /var/lib/proctor --shell /usr/sbin/nologin" in calls
    assert "deb-systemd-helper enable proctor-runner.service" in calls
    assert "systemctl --system daemon-reload" in calls
    assert "deb-systemd-invoke" not in calls  # not started with the placeholder backend


def test_postinst_upgrade_keeps_the_user_and_restarts_a_running_agent(scripts):
    calls = scripts("postinst", "configure", "0.0.1", user_exists=True)
    assert "adduser" not in calls
    assert "deb-systemd-invoke try-restart proctor-runner.service" in calls


def test_postinst_without_systemd_running(scripts):
    # A chroot or an image build: the unit is enabled, nothing is started or reloaded.
    calls = scripts("postinst", "configure", "", systemd=False)
    assert "deb-systemd-helper enable proctor-runner.service" in calls
    assert "systemctl" not in calls and "deb-systemd-invoke" not in calls


def test_prerm_stops_the_agent_on_removal_only(scripts):
    assert "deb-systemd-invoke stop proctor-runner.service" in scripts("prerm", "remove")
    assert "deb-systemd-invoke" not in scripts("prerm", "upgrade", "0.2.0")


def test_postrm_purge_removes_the_state_but_not_the_user(scripts):
    scripts.state.mkdir()
    (scripts.state / "spool").mkdir()
    assert "deb-systemd-helper mask" in scripts("postrm", "remove")
    assert scripts.state.exists()  # remove keeps the state
    calls = scripts("postrm", "purge")
    assert "deb-systemd-helper purge proctor-runner.service" in calls
    assert not scripts.state.exists()
    assert "deluser" not in calls and "userdel" not in calls
