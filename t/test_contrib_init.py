"""contrib/clinit.init, the LSB init script: every action and its exit status.

The script runs the checkout's clinit (through a two-line wrapper that
execs it with this venv's python, which has python-daemon and lockfile
for ``-d -b``) on a cltab whose socket, clstat, log and pid file are in
the test's directory.  /etc/default/clinit and /lib/lsb/init-functions
are kept out unless a test asks for them.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from daemon_rig import CHECKOUT, CLINIT, marked_pids, wait_for
from realproc import alive, environ_of

SCRIPT = os.path.join(CHECKOUT, "contrib", "clinit.init")
NOWHERE = "/nonexistent/clinit-test"


def cltab_text(directory, entries, pidfile=True):
    settings = [
        f":::socket:{directory}/clinit.s",
        f":::clstat:{directory}/clstat",
        f":::log:{directory}/clinitlog",
        ":::term_delay:1",
        ":::kill_delay:1",
    ]
    if pidfile:
        settings.append(f":::pidfile:{directory}/clinit.pid")
    return "\n".join(settings + entries) + "\n"


def web_entry(directory):
    return f"web:httpd:run:respawn:echo $$ > {directory}/web.pid; exec sleep 300"


class Init:
    """The init script on a node; calling it runs one action."""

    def __init__(self, node, **env):
        self.node = node
        self.pidfile = os.path.join(node.dir, "clinit.pid")
        self.env = node.env()
        self.env.update(
            CLINIT=node.wrapper(),
            CLTAB=node.cltab,
            CLINIT_DEFAULTS=NOWHERE,
            LSB_INIT_FUNCTIONS=NOWHERE,
        )
        for name, value in env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value

    def __call__(self, *args):
        return subprocess.run(
            [SCRIPT, *args], env=self.env, cwd=self.node.dir, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=90,
        )

    def pid(self):
        with open(self.pidfile, encoding="ascii") as stream:
            return int(stream.read().strip())

    def child_pid(self):
        path = os.path.join(self.node.dir, "web.pid")
        return wait_for(lambda: os.path.exists(path) and open(path).read().strip(), what="web.pid")


def check(result, status, *, says=None):
    """``result`` exited ``status`` (and printed ``says``); its output."""
    output = result.stdout + result.stderr
    assert result.returncode == status, f"exit {result.returncode}, wanted {status}:\n{output}"
    if says is not None:
        assert re.search(says, output), f"{says!r} not in:\n{output}"
    return output


def check_supported(node):
    """xfail unless this clinit has --check (the reload needs it)."""
    result = node.clinit("--check")
    if result.returncode == 2 and "--check" in result.stderr:
        pytest.xfail("clinit --check is not on main yet (the init script's reload needs it)")


@pytest.fixture
def init(node):
    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir)]))
    return Init(node)


def test_lsb_header_and_posix_sh():
    text = open(SCRIPT, encoding="utf-8").read()
    assert text.startswith("#!/bin/sh\n")
    assert os.access(SCRIPT, os.X_OK)
    header = text.split("### BEGIN INIT INFO\n", 1)[1].split("### END INIT INFO\n", 1)[0]
    fields = dict(re.findall(r"^# ([A-Z][\w-]*):\s*(.*)$", header, re.M))
    assert fields["Provides"] == "clinit"
    for name in ("Required-Start", "Required-Stop", "Default-Start", "Default-Stop",
                 "Short-Description", "Description"):
        assert fields.get(name), f"no {name} in the LSB header"
    assert set(fields["Default-Start"].split()) == {"2", "3", "4", "5"}
    assert "set -e" not in text.replace("no `set -e`", "")
    dash = shutil.which("dash") or "/bin/sh"
    result = subprocess.run([dash, "-n", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shellcheck_posix():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run(
        ["shellcheck", "-s", "sh", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_start_stop_status(init, node):
    check(init("status"), 3, says="not running")
    check(init("stop"), 0)

    check(init("start"), 0, says="Started")
    pid = init.pid()
    assert alive(pid) and node.client().alive(), "start returns once the socket answers"
    assert f"pid {pid}" in node.client().ping()
    check(init("status"), 0, says=f"running \\(pid {pid}\\)")

    check(init("start"), 0, says="already running")
    assert init.pid() == pid
    assert node.client().ping() == node.client().ping()

    result = node.clinit("-w", "-t", "20", "web", "run")
    assert result.returncode == 0 and result.stdout.endswith("web run DONE\n"), result.stderr
    child = int(init.child_pid())
    assert alive(child)

    check(init("stop"), 0, says="Stopped")
    assert not alive(pid) and not alive(child), "stop halts the groups and waits for the daemon"
    assert not os.path.exists(init.pidfile)
    assert not os.path.exists(node.clstat)
    assert marked_pids(node.mark) == []
    check(init("stop"), 0, says="not running")
    check(init("status"), 3)


def test_restart_and_try_restart(init, node):
    check(init("try-restart"), 0)
    check(init("status"), 3)  # try-restart does not start a stopped daemon
    check(init("start"), 0)
    first = init.pid()
    check(init("restart"), 0)
    second = init.pid()
    assert second != first and not alive(first) and alive(second)
    check(init("try-restart"), 0)
    third = init.pid()
    assert third != second and not alive(second) and alive(third)
    check(init("stop"), 0)
    check(init("restart"), 0)  # restart of a stopped daemon starts it
    check(init("status"), 0)
    check(init("stop"), 0)
    assert marked_pids(node.mark) == []


def test_reload_rereads_the_cltab(init, node):
    check_supported(node)
    check(init("reload"), 7, says="not running")
    check(init("start"), 0)
    pid = init.pid()
    assert node.clinit("-w", "-t", "20", "web", "run").returncode == 0
    child = int(init.child_pid())

    # web leaves the cltab: a reread halts it and drops it from clstat
    node.write_cltab(cltab_text(node.dir, ["db:sleeper:up:once:exec sleep 300"]))
    check(init("reload"), 0)
    wait_for(lambda: not alive(child), what="web's process to stop after the reload")
    wait_for(lambda: "web" not in open(node.clstat).read(), what="web to leave clstat")
    assert init.pid() == pid and alive(pid)

    node.write_cltab(cltab_text(node.dir, ["db:sleeper:up:once:exec sleep 301"]))
    check(init("force-reload"), 0)
    assert init.pid() == pid

    check(init("stop"), 0)
    assert marked_pids(node.mark) == []


def test_reload_refuses_a_broken_cltab(init, node):
    check_supported(node)
    check(init("start"), 0)
    pid = init.pid()
    assert node.clinit("-w", "-t", "20", "web", "run").returncode == 0
    child = int(init.child_pid())
    log_before = node.log_text()

    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir), "x:y:run:never:true"]))
    output = check(init("reload"), 1, says="refused")
    assert "never" in output, "the check says what is wrong"
    assert init.pid() == pid and alive(pid) and alive(child), "the daemon is untouched"
    assert "never" not in node.log_text()[len(log_before):], "the daemon never saw it"
    assert open(node.clstat).read() == "Cluster::Init::Group web run DONE\n"

    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir)]))
    check(init("stop"), 0)
    assert marked_pids(node.mark) == []


def test_status_after_kill_9(init, node):
    check(init("start"), 0)
    pid = init.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the daemon to die")
    check(init("status"), 1, says="pid file")
    check(init("start"), 0, says="Started")  # the pid file of a dead daemon is no obstacle
    assert init.pid() != pid
    check(init("stop"), 0)
    check(init("status"), 3)

    check(init("start"), 0)
    pid = init.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the daemon to die")
    check(init("stop"), 0)  # a dead daemon: nothing to stop
    assert not os.path.exists(init.pidfile), "and the stale pid file goes"
    check(init("status"), 3)
    assert marked_pids(node.mark) == []


def test_stop_when_the_socket_setting_changed(init, node):
    """No daemon answers where the cltab now says: stop falls back to SIGTERM."""
    check(init("start"), 0)
    pid = init.pid()
    assert node.clinit("-w", "-t", "20", "web", "run").returncode == 0
    child = int(init.child_pid())
    moved = cltab_text(node.dir, [web_entry(node.dir)])
    node.write_cltab(moved.replace(f":::socket:{node.dir}/clinit.s", f":::socket:{node.dir}/moved.s"))
    check(init("stop"), 0, says="Stopped")
    assert not alive(pid) and not alive(child)
    assert not os.path.exists(init.pidfile)
    assert marked_pids(node.mark) == []


def test_usage(init):
    check(init("bogus"), 2, says="Usage: .*start\\|stop")
    check(init(), 2, says="Usage")


def test_not_installed_or_not_configured(init, node):
    missing = Init(node, CLINIT=os.path.join(node.dir, "no-such-clinit"))
    check(missing("start"), 5, says="no clinit command")
    check(missing("status"), 3)
    check(missing("stop"), 0)

    unconfigured = Init(node, CLTAB=os.path.join(node.dir, "no-such-cltab"))
    check(unconfigured("start"), 6, says="no-such-cltab")

    node.write_cltab(cltab_text(node.dir, ["x:y:run:never:true"]))
    result = init("start")
    # 6 once `clinit -d -b` exits 6 for a refused cltab (the contract), 1 before
    assert result.returncode in (1, 6), result.stdout + result.stderr
    check(init("status"), 3)
    assert not os.path.exists(node.socket)

    slow = Init(node, STOP_TIMEOUT="1.5")
    check(slow("status"), 6, says="STOP_TIMEOUT")


def test_settings_from_the_defaults_file(node):
    """CLINIT, CLTAB and PIDFILE from /etc/default/clinit; a cltab without :::pidfile:."""
    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir)], pidfile=False))
    pidfile = os.path.join(node.dir, "from-defaults.pid")
    defaults = os.path.join(node.dir, "default-clinit")
    with open(defaults, "w", encoding="utf-8") as stream:
        stream.write(
            f"CLINIT={shlex.quote(node.wrapper())}\n"
            f"CLTAB={shlex.quote(node.cltab)}\n"
            f"PIDFILE={shlex.quote(pidfile)}\n"
        )
    init = Init(node, CLINIT=None, CLTAB=None, CLINIT_DEFAULTS=defaults)
    check(init("start"), 0)
    assert os.path.exists(pidfile) and node.client().alive()
    check(init("status"), 0)
    check(init("stop"), 0)
    assert not os.path.exists(pidfile)
    assert marked_pids(node.mark) == []


def test_the_cltab_from_clinit_cltab_in_the_defaults_file(node):
    """CLINIT_CLTAB in /etc/default/clinit; the script exports it to the daemon and its entries."""
    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir)]))
    defaults = os.path.join(node.dir, "default-clinit")
    with open(defaults, "w", encoding="utf-8") as stream:
        stream.write(f"CLINIT={shlex.quote(node.wrapper())}\nCLINIT_CLTAB={shlex.quote(node.cltab)}\n")
    init = Init(node, CLINIT=None, CLTAB="/nonexistent/older-name-loses", CLINIT_DEFAULTS=defaults)
    check(init("start"), 0, says="Started")
    named = f"CLINIT_CLTAB={node.cltab}".encode()
    wait_for(lambda: named in environ_of(init.pid()), what="CLINIT_CLTAB in the daemon's")
    node.settle("web", "run")
    wait_for(lambda: named in environ_of(int(init.child_pid())), what="CLINIT_CLTAB in the entry's")
    check(init("stop"), 0, says="Stopped")
    assert marked_pids(node.mark) == []


def test_boot_levels_bring_the_node_up_and_stop_brings_it_down(node):
    """With :::boot: lines, start alone brings the groups up and stop alone brings them down."""
    node.write_cltab(cltab_text(node.dir, [":::boot:web:run", web_entry(node.dir)]))
    init = Init(node)
    check(init("start"), 0, says="Started")
    assert node.client().wait("web", "run", timeout=20) == "DONE", "no tell: the boot level"
    child = int(init.child_pid())
    assert alive(child) and "boot: telling web level run" in node.log_text()
    check(init("stop"), 0, says="Stopped")
    assert not alive(child) and marked_pids(node.mark) == []
    assert not os.path.exists(node.clstat)
    os.unlink(os.path.join(node.dir, "web.pid"))
    check(init("start"), 0, says="Started")
    assert node.client().wait("web", "run", timeout=20) == "DONE", "and again at the next start"
    assert int(init.child_pid()) != child
    check(init("stop"), 0, says="Stopped")
    assert marked_pids(node.mark) == []


def test_with_lsb_init_functions(init, node):
    functions = "/lib/lsb/init-functions"
    if not os.path.exists(functions):
        pytest.skip(f"{functions} is not here (Debian package lsb-base / sysvinit-utils)")
    init.env["LSB_INIT_FUNCTIONS"] = functions
    init.env["SYSTEMCTL_SKIP_REDIRECT"] = "1"
    check(init("start"), 0, says="Started")
    check(init("start"), 0, says="already running")
    check(init("status"), 0)
    check(init("stop"), 0, says="Stopped")
    check(init("stop"), 0)
    check(init("status"), 3)
    assert marked_pids(node.mark) == []
