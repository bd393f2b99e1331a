"""The Debian package (debian/): built, linted, installed, run, upgraded, removed, purged.

Root only, on Debian with dpkg-dev, debhelper, dh-python, lintian, apt and
man-db and the package's dependencies installed (.ci/run installs them);
it skips with its reason elsewhere, and where a clinit package is already
installed or a clinit daemon answers on the default socket.

The steps run in file order on one machine state; a failed step skips
the rest, and the module fixture then purges the package and puts back
what it moved aside (deb_rig.Machine): /etc/cltab, /etc/default/clinit,
the init script and every link, /usr/lib/ocf/resource.d/clinit (which
the Pacemaker test binds), /var/log/clinit, /run/clinit and .ci/run's
/usr/sbin/policy-rc.d, lifted for the test's duration so that the
maintainer scripts start and stop the daemon as on a real node.  The
last step checks that the machine is as it was found, processes included.

The upgrade step checks what works without help from the daemon (no stop,
no restart: every process keeps its pid) and then that the postinst's
`clinit --reexec` made the daemon re-execute itself as the new version
(the same pid, its log says it took over in place).  About 30 s on two
cores.
"""

import glob
import os
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

import deb_rig
from deb_rig import APT_ENV, APT_GET, CLEAN_ENV, run

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP = "debpkg"
CLTAB = f"""\
# written by t/test_debian_package.py; the node's default socket, clstat, log
:::term_delay:1
:::kill_delay:1
{GROUP}:sleeper:up:respawn:exec sleep 3600
{GROUP}:napper:up:respawn:exec sleep 3601
"""
INIT = "/etc/init.d/clinit"
UNIT = "/lib/systemd/system/clinit.service"
AGENT = "/usr/lib/ocf/resource.d/clinit/group"
# the init script itself, not systemctl, even on a machine booted with systemd
INIT_ENV = dict(CLEAN_ENV, SYSTEMCTL_SKIP_REDIRECT="1", _SYSTEMCTL_SKIP_REDIRECT="1")

pytestmark = pytest.mark.skipif(deb_rig.why_not() is not None, reason=str(deb_rig.why_not()))


def checkout_version():
    with open(os.path.join(CHECKOUT, "lib", "cluster_init", "version.py"), encoding="utf-8") as f:
        return re.search(r'VERSION = "([^"]+)"', f.read()).group(1)


class Package:
    """The state the steps share: the machine, the built packages, the group's pids."""

    def __init__(self, machine, workdir):
        self.machine = machine
        self.workdir = workdir
        self.debs = {}
        self.failed = None
        self.daemon = None
        self.pids = None
        self.changes = None

    def step(self):
        return _Step(self)


class _Step:
    def __init__(self, package):
        self.package = package

    def __enter__(self):
        if self.package.failed:
            pytest.skip(f"an earlier step failed: {self.package.failed}")

    def __exit__(self, kind, value, traceback):
        outcomes = (pytest.skip.Exception, pytest.xfail.Exception)
        if kind is not None and not issubclass(kind, outcomes):
            self.package.failed = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        return False


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("debian-package"))
    backup = os.path.join(workdir, "saved")
    os.mkdir(backup)
    machine = deb_rig.Machine(backup, GROUP)
    machine.save()
    try:
        yield Package(machine, workdir)
    finally:
        machine.restore()


def apt(*args):
    result = run([*APT_GET, *args], env=APT_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def init(action):
    return run([INIT, action], env=INIT_ENV, timeout=120)


def group_pids():
    """{tag: pid} from clinit -l (piped: tab-separated, no header)."""
    result = run(["/usr/bin/clinit", "-l", GROUP])
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return {row[1]: int(row[5]) for row in rows if row[5].isdigit()}


def daemon_pid():
    with open("/var/run/clinit/clinit.pid", encoding="utf-8") as stream:
        return int(stream.read().split()[0])


def unit_lines(key):
    with open(UNIT, encoding="utf-8") as stream:
        return [line.split("=", 1)[1].strip() for line in stream if line.startswith(key + "=")]


# ---- the steps, in order ------------------------------------------------------------


def test_build_and_lintian(package):
    with package.step():
        for name, bump in (("first", False), ("upgrade", True)):
            source = deb_rig.checkout_copy(CHECKOUT, os.path.join(package.workdir, name, "clinit"))
            if bump:
                deb_rig.bump_revision(source)
            result, deb, changes = deb_rig.build(source)
            if deb is None:
                pytest.skip(f"build dependencies missing: {result.stdout}{result.stderr}".strip())
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            assert os.path.isfile(deb), os.listdir(os.path.dirname(source))
            assert "test session starts" not in result.stdout, "the build ran the test suite"
            package.debs[name] = (deb, deb_rig.changelog_version(source))
            package.changes = changes
        deb, version = package.debs["first"]
        assert version.startswith(checkout_version() + "-")
        assert os.path.basename(deb) == f"clinit_{version}_all.deb"

        fields = {key: run(["dpkg-deb", "-f", deb, key]).stdout.strip()
                  for key in ("Architecture", "Depends", "Maintainer")}
        assert fields["Architecture"] == "all"
        depends = {alternative.split()[0] for alternative in fields["Depends"].split(", ")}
        assert {"python3", "python3-daemon", "python3-lockfile"} <= depends, fields
        assert fields["Maintainer"].endswith("@example.org>"), fields

        listing = run(["dpkg-deb", "-c", deb]).stdout
        for path in ("./usr/bin/clinit", "./usr/lib/python3/dist-packages/cluster_init/cli.py",
                     "./usr/share/man/man8/clinit.8.gz", "./usr/share/man/man5/cltab.5.gz",
                     "." + UNIT, "." + INIT, "./etc/default/clinit", "./etc/logrotate.d/clinit",
                     "." + AGENT, "./usr/share/doc/clinit/examples/cltab.example",
                     "./usr/share/doc/clinit/README.Debian", "./usr/share/doc/clinit/copyright"):
            assert re.search(rf" {re.escape(path)}(\.gz)?$", listing, re.M), path

        # an upgrade neither stops the daemon nor restarts it (a restart halts
        # every group; invoke-rc.d may not run here, so the scripts are read)
        scripts = os.path.join(package.workdir, "control")
        assert run(["dpkg-deb", "-e", deb, scripts]).returncode == 0
        for script in ("preinst", "postinst", "prerm", "postrm"):
            path = os.path.join(scripts, script)
            if os.path.exists(path):
                assert stops_only_on_remove(path) and not restarts(path), script

        # the .changes of the upgrade build: its .deb and .buildinfo
        lint = run(["lintian", "--fail-on", "error,warning", package.changes], timeout=300)
        tags = [line for line in lint.stdout.splitlines() if re.match(r"[EW]: ", line)]
        assert lint.returncode == 0 and not tags, lint.stdout + lint.stderr


def code_lines(path):
    with open(path, encoding="utf-8") as stream:
        return [line.strip() for line in stream if line.strip() and not line.strip().startswith("#")]


def stops_only_on_remove(path):
    """True if every stop of the service in a maintainer script is under [ "$1" = remove ]."""
    condition = ""
    for line in code_lines(path):
        if line.startswith(("if ", "elif ")):
            condition = line
        if re.search(r"(invoke-rc\.d|deb-systemd-invoke|systemctl)\b.*\bstop\b", line):
            assert '"$1" = remove' in condition or '"$1" = "remove"' in condition, (path, line)
    return True


def restarts(path):
    """The lines of a maintainer script that restart the service, if any."""
    return [line for line in code_lines(path)
            if re.search(r"\b(try-)?restart\b", line)]


def test_install_without_a_cltab(package):
    with package.step():
        apt("install", package.debs["first"][0])
        assert deb_rig.installed_version() == package.debs["first"][1]

        result = run(["/usr/bin/clinit", "--version"])
        assert result.returncode == 0 and result.stdout == f"clinit {checkout_version()}\n"
        for page, where in (("clinit", "/usr/share/man/man8/clinit.8"),
                            ("cltab", "/usr/share/man/man5/cltab.5")):
            found = run(["man", "-w", page]).stdout.strip()
            assert found.startswith(where), (page, found)

        meta = run([AGENT, "meta-data"], env=dict(CLEAN_ENV, OCF_ROOT="/usr/lib/ocf"))
        assert meta.returncode == 0, meta.stderr
        agent = ElementTree.fromstring(meta.stdout.split("\n", 1)[1])
        assert agent.get("name") == "group" and agent.get("version") == checkout_version()

        conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}", "clinit"]).stdout
        assert "/etc/default/clinit " in conffiles, conffiles
        with open("/etc/default/clinit", encoding="utf-8") as stream:
            assert re.search(r"^#CLINIT_CLTAB=/etc/cltab$", stream.read(), re.M)
        with open("/etc/logrotate.d/clinit", encoding="utf-8") as stream:
            assert "/var/log/clinit/*.log" in stream.read()

        # the full path, never PATH's first clinit
        for key in ("ExecStart", "ExecReload", "ExecStop"):
            commands = [exec_command(line) for line in unit_lines(key)]
            assert all(c in ("/usr/bin/clinit", "/bin/kill") for c in commands), (key, commands)
        with open(INIT, encoding="utf-8") as stream:
            assert "CLINIT=${CLINIT:-/usr/bin/clinit}\n" in stream.read()

        if shutil.which("systemd-analyze", path=deb_rig.SYSTEM_PATH):
            verify = run(["systemd-analyze", "verify", UNIT],
                         env=dict(CLEAN_ENV, SYSTEMD_LOG_LEVEL="notice"), timeout=120)
            ours = [line for line in (verify.stdout + verify.stderr).splitlines() if "clinit" in line]
            assert verify.returncode == 0 and not ours, verify.stdout + verify.stderr

        # no cltab: nothing failed, nothing started, and the unit would skip its start
        assert not os.path.exists("/etc/cltab")
        result = init("status")
        assert result.returncode == 3, result.stdout + result.stderr
        result = init("start")
        assert result.returncode == 0 and "not configured" in result.stdout, result
        assert init("status").returncode == 3
        if os.path.isdir("/run/systemd/system"):
            assert run(["systemctl", "is-failed", "--quiet", "clinit.service"]).returncode != 0
        condition = exec_condition()
        assert condition.returncode == 1 and "not configured" in condition.stdout, condition


def exec_command(line):
    """The command an Exec line runs: its first word, or what its ``/bin/sh -c`` execs."""
    words = shlex.split(line.lstrip("-"))
    if words[:2] == ["/bin/sh", "-c"]:
        return shlex.split(words[2].split(" exec ", 1)[1])[0]
    return words[0]


def exec_condition():
    """The unit's ExecCondition, run as systemd would with the unit's Environment=."""
    env = dict(CLEAN_ENV)
    for assignment in unit_lines("Environment"):
        name, _, value = assignment.partition("=")
        env[name] = value
    (line,) = unit_lines("ExecCondition")
    return run([word.replace("$$", "$") for word in shlex.split(line)], env=env)


def test_daemon_through_the_init_script(package):
    with package.step():
        with open("/etc/cltab", "w", encoding="utf-8") as stream:
            stream.write(CLTAB)
        os.chmod("/etc/cltab", 0o644)
        assert exec_condition().returncode == 0, "with a cltab the unit starts"

        result = init("start")
        assert result.returncode == 0 and "Started" in result.stdout, result
        assert init("status").returncode == 0
        package.daemon = daemon_pid()
        told = run(["/usr/bin/clinit", "-w", "-t", "30", GROUP, "up"])
        assert told.returncode == 0 and told.stdout == f"{GROUP} up DONE\n", told
        package.pids = group_pids()
        assert set(package.pids) == {"sleeper", "napper"}
        assert sorted(package.pids.values()) == deb_rig.marked_pids(GROUP)


def test_upgrade_keeps_the_groups_running(package):
    with package.step():
        deb, version = package.debs["upgrade"]
        output = apt("install", deb)
        assert deb_rig.installed_version() == version
        # no stop before, no restart after: the same daemon, the same children
        assert daemon_pid() == package.daemon and deb_rig._alive(package.daemon)
        assert group_pids() == package.pids
        assert deb_rig.marked_pids(GROUP) == sorted(package.pids.values())
        assert run(["/usr/bin/clinit", "-S", GROUP, "up"]).returncode == 0

        # the postinst's clinit --reexec: the daemon re-executed itself as the new version
        assert "re-executed itself" in output and "did not hand over" not in output, output
        assert daemon_pid() == package.daemon and deb_rig._alive(package.daemon)
        assert group_pids() == package.pids, "the new daemon kept every process"
        with open("/var/log/clinit/clinit.log", encoding="utf-8") as stream:
            log = stream.read()
        execs = [line for line in log.splitlines() if "re-executes itself" in line]
        assert len(execs) == 1 and "/usr/bin/clinit -d -b" in execs[0], execs
        assert f"took over from clinit {checkout_version()} in place, pid {package.daemon}" in log


def test_stop_remove_purge(package):
    with package.step():
        result = init("stop")
        assert result.returncode == 0 and "Stopped" in result.stdout, result
        assert init("status").returncode == 3
        assert deb_rig.marked_pids(GROUP) == [] and not deb_rig._alive(package.daemon)

        # remove stops a running daemon as clinit -k does
        assert init("start").returncode == 0
        assert run(["/usr/bin/clinit", "-w", "-t", "30", GROUP, "up"]).returncode == 0
        assert deb_rig.marked_pids(GROUP)
        apt("remove", "clinit")
        assert deb_rig.marked_pids(GROUP) == [] and deb_rig.packaged_clinit_pids() == []
        assert not os.path.exists("/usr/bin/clinit") and not os.path.exists(AGENT)
        assert os.path.exists("/etc/default/clinit"), "remove keeps the conffiles"
        assert not os.access(INIT, os.X_OK), "removed, not purged: the init script is off"

        apt("purge", "clinit")
        assert deb_rig.installed_version() is None
        for path in ("/etc/default/clinit", INIT, "/etc/logrotate.d/clinit",
                     "/usr/lib/ocf/resource.d/clinit", "/var/log/clinit", "/run/clinit"):
            assert not os.path.lexists(path), f"purge left {path}"
        for pattern in deb_rig.LINK_GLOBS:
            assert not glob.glob(pattern), f"purge left {pattern}"
        assert os.path.exists("/etc/cltab"), "the cltab is the administrator's"


def test_machine_as_found(package):
    package.machine.restore()
    assert package.machine.snapshot() == package.machine.before
