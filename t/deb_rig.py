"""The rig of t/test_debian_package.py: build the package, install it with apt,
and put the machine back as it was found.

``why_not()`` says why the package test cannot run here (None when it
can).  ``build(checkout, into)`` builds debian/ from a copy of the
checkout.  ``Machine`` saves what the package (and the test) touch --
/etc/cltab, /etc/default/clinit, the init script and its links, the
unit's links, /usr/lib/ocf/resource.d/clinit (which the Pacemaker test
binds), /var/log/clinit, /run/clinit, /usr/sbin/policy-rc.d -- moves
them aside for the test's duration, and ``restore()`` puts them back
and kills whatever the test's daemon left; ``snapshot()`` describes all
of it, so that a test can compare before and after.
"""

import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# commands run as a package's maintainer scripts would: no venv, no pyenv
CLEAN_ENV = {"PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"}
APT_ENV = dict(CLEAN_ENV, DEBIAN_FRONTEND="noninteractive")
APT_GET = [
    "apt-get", "-y", "-q", "--no-install-recommends",
    "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
]
POLICY_RC_D = "/usr/sbin/policy-rc.d"
DEFAULT_SOCKET = "/var/run/clinit/clinit.s"

# What the package installs, or the test writes, outside the package's own
# files: moved aside before, put back after.
SAVED = [
    "/etc/cltab",
    "/etc/default/clinit",
    "/etc/init.d/clinit",
    "/etc/logrotate.d/clinit",
    "/usr/lib/ocf/resource.d/clinit",
    "/var/log/clinit",
    "/run/clinit",
    POLICY_RC_D,
]
# Links made by update-rc.d and deb-systemd-helper.
LINK_GLOBS = [
    "/etc/rc[0-6S].d/[SK][0-9][0-9]clinit",
    "/etc/systemd/system/*.wants/clinit.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/clinit.service*",
    "/var/lib/systemd/deb-systemd-helper-enabled/*.wants/clinit.service",
]


def run(argv, timeout=300, **kwargs):
    kwargs.setdefault("env", CLEAN_ENV)
    kwargs.setdefault("cwd", "/")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def installed_version(package="clinit"):
    """The installed version of ``package``, or None."""
    result = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", package])
    if result.returncode != 0 or not result.stdout.startswith("ii"):
        return None
    return result.stdout.split()[-1]


def package_known(package="clinit"):
    """True while dpkg knows ``package`` in any state (installed, config-files, half-...)."""
    result = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", package])
    return result.returncode == 0 and result.stdout[:2] not in ("", "un", "pn")


def daemon_answers(path=DEFAULT_SOCKET):
    import socket

    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def why_not():
    """Why the package test cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: it installs, upgrades and purges a Debian package"
    for tool, package in [
        ("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"), ("pybuild", "dh-python"),
        ("lintian", "lintian"), ("apt-get", "apt"), ("man", "man-db"),
    ]:
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            return f"{tool} is not installed (Debian package {package})"
    for package in ("python3-daemon", "python3-lockfile"):
        if installed_version(package) is None:
            return f"{package}, a dependency of the package, is not installed"
    if package_known():
        return "a clinit package is installed here (or its conffiles are); not replacing it"
    if daemon_answers():
        return f"a clinit daemon answers on {DEFAULT_SOCKET}; not disturbing it"
    return None


def checkout_copy(checkout, into):
    """The checkout's files (tracked and untracked, not ignored) copied into ``into``."""
    listed = run(["git", "-C", checkout, "ls-files", "-z", "-co", "--exclude-standard"])
    if listed.returncode == 0:
        names = [name for name in listed.stdout.split("\0") if name]
        for name in names:
            source = os.path.join(checkout, name)
            if os.path.isfile(source) or os.path.islink(source):  # a deleted file is listed too
                target = os.path.join(into, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(source, target, follow_symlinks=False)
    else:  # not a git checkout: everything but what a build or a venv leaves
        shutil.copytree(checkout, into, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
            ".hypothesis", "run", ".pybuild"))
    return into


def changelog_version(source):
    with open(os.path.join(source, "debian", "changelog"), encoding="utf-8") as stream:
        first = stream.readline()
    return re.match(r"clinit \(([^)\s]+)\)", first).group(1)


def bump_revision(source):
    """Prepend a changelog entry one Debian revision higher; its version."""
    version = changelog_version(source)
    upstream, _, revision = version.rpartition("-")
    new = f"{upstream}-{int(revision) + 1}"
    path = os.path.join(source, "debian", "changelog")
    with open(path, encoding="utf-8") as stream:
        old = stream.read()
    date = run(["date", "-R"]).stdout.strip()
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(
            f"clinit ({new}) unstable; urgency=medium\n\n"
            "  * Rebuilt by t/test_debian_package.py to test an upgrade.\n\n"
            f" -- clinit project <clinit@example.org>  {date}\n\n" + old
        )
    return new


def build(source):
    """dpkg-buildpackage -us -uc -b in ``source``: (result, the .deb, the .changes)."""
    missing = run(["dpkg-checkbuilddeps"], cwd=source)
    if missing.returncode != 0:
        return missing, None, None
    result = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=source, timeout=600)
    version = changelog_version(source)
    parent = os.path.dirname(source)
    deb = os.path.join(parent, f"clinit_{version}_all.deb")
    changes = glob.glob(os.path.join(parent, f"clinit_{version}_*.changes"))
    return result, deb, changes[0] if changes else None


def _describe(path):
    if os.path.islink(path):
        return "-> " + os.readlink(path)
    if os.path.isdir(path):
        return "dir " + " ".join(sorted(os.listdir(path)))
    if os.path.isfile(path):
        with open(path, "rb") as stream:
            return "file " + hashlib.sha256(stream.read()).hexdigest()
    return None


def marked_pids(group):
    """Pids of processes whose environment says CLINIT_GROUP=``group``."""
    found = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(environ, "rb") as stream:
                items = stream.read().split(b"\0")
        except OSError:
            continue
        if f"CLINIT_GROUP={group}".encode() in items:
            found.append(int(environ.split("/")[2]))
    return sorted(found)


def packaged_clinit_pids():
    """Pids of processes running the package's /usr/bin/clinit."""
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as stream:
                argv = stream.read().split(b"\0")
        except OSError:
            continue
        if b"/usr/bin/clinit" in argv[:2]:
            found.append(int(cmdline.split("/")[2]))
    return sorted(found)


class Machine:
    """What the package test changes on this machine, saved and put back."""

    def __init__(self, backup, group):
        self.backup = backup
        self.group = group
        self.saved = {}
        self.links = {}
        self.before = None

    def snapshot(self):
        state = {path: _describe(path) for path in SAVED}
        for pattern in LINK_GLOBS:
            for path in glob.glob(pattern):
                state[path] = _describe(path)
        state["clinit package"] = (package_known(), installed_version())
        state["group processes"] = marked_pids(self.group)
        state["/usr/bin/clinit processes"] = packaged_clinit_pids()
        return state

    def save(self):
        """Move aside what is there; the test starts from a machine without clinit."""
        self.before = self.snapshot()
        for number, path in enumerate(SAVED):
            if os.path.lexists(path):
                self.saved[path] = os.path.join(self.backup, str(number))
                shutil.move(path, self.saved[path])
        for pattern in LINK_GLOBS:
            for path in glob.glob(pattern):
                self.links[path] = os.readlink(path) if os.path.islink(path) else None
                if self.links[path] is None:  # a state file of deb-systemd-helper
                    self.links[path] = ("file", open(path, "rb").read())
                os.remove(path)

    def kill_leftovers(self):
        """Kill the test daemon and the group's processes, if any are left."""
        pids = packaged_clinit_pids() + marked_pids(self.group)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def restore(self):
        """Purge the package if still there, kill leftovers, put back what was saved."""
        if package_known():
            if installed_version() is not None:
                run(["timeout", "60", "/usr/bin/clinit", "-k", "-w", "-t", "30"])
            self.kill_leftovers()
            run(["dpkg", "--purge", "clinit"], env=APT_ENV)
        self.kill_leftovers()
        for path in SAVED:
            if path in self.saved:
                if os.path.lexists(path):
                    _remove(path)
                shutil.move(self.saved.pop(path), path)
            elif os.path.lexists(path) and self.before is not None and self.before[path] is None:
                _remove(path)
        for path, target in self.links.items():
            if os.path.lexists(path):
                os.remove(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if isinstance(target, tuple):
                with open(path, "wb") as stream:
                    stream.write(target[1])
            else:
                os.symlink(target, path)
        self.links = {}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
