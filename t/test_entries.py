"""Against real processes: one entry stopped and started by hand (clinit --stop,
--start), boot levels (:::boot:) under a plain clinit -d and under -d -b, after
a kill -9 of the daemon, and the cltab named by CLINIT_CLTAB for the command,
the daemon and the Python API.  (The init script's boot: test_contrib_init.py.)
"""

import os
import signal
import socket
import subprocess
import sys

import pytest

from daemon_rig import CLINIT, settings, stays, tagged, wait_for
from realproc import alive, environ_of

FAST = (":::term_delay:1", ":::kill_delay:1")


def rows(node, group):
    result = node.clinit("-l", group)
    assert result.returncode == 0, result.stderr
    return {fields[1]: fields for fields in (line.split("\t") for line in result.stdout.splitlines())}


def one_pid(node, tag):
    return wait_for(lambda: len(tagged(node, tag)) == 1 and tagged(node, tag)[0], what=f"one process of {tag}")


# ---- clinit --stop and --start ---------------------------------------------------


WEB = (
    "web:srv:run:respawn:exec sleep 300\n"
    "web:job:run:once:echo ran >> {out}\n"
    "web:elsewhere:other:respawn:exec sleep 300\n"
    "slow:gate:up:wait:while [ ! -e {dir}/gate ]; do sleep 0.05; done\n"
    "slow:svc:up:respawn:exec sleep 300\n"
)


@pytest.fixture
def web(node):
    node.write_cltab(settings(node, *FAST) + WEB.format(out=node.out, dir=node.dir))
    node.start()
    assert node.settle("web", "run") == "DONE"
    return node


def test_stop_keeps_a_respawn_entry_stopped_until_start(web):
    node = web
    pid = one_pid(node, "srv")
    result = node.clinit("--stop", "web", "srv")
    assert (result.returncode, result.stdout) == (0, "stopping web:srv\n"), result.stderr
    wait_for(lambda: not alive(pid), what="the stop")
    wait_for(lambda: rows(node, "web")["srv"][4] == "CONFIGURED", what="CONFIGURED")
    row = rows(node, "web")["srv"]
    assert (row[5], row[7], row[9]) == ("-", "SIGINT", "stopped by hand"), row
    assert f"web:srv: stop by hand, asked by uid {os.getuid()} (pid " in node.log_text()
    assert stays(lambda: tagged(node, "srv"), 1.5, "the stopped entry's processes") == []
    assert node.status() == "web run DONE\n", "a deliberate stop is not a failure"
    assert node.clinit("-S", "web", "run").returncode == 0
    assert node.clinit("--stop", "web", "srv").stdout == "web:srv is stopped by hand already\n"

    result = node.clinit("--start", "web", "srv")
    assert (result.returncode, result.stdout) == (0, "starting web:srv\n"), result.stderr
    new = one_pid(node, "srv")
    assert new != pid
    row = wait_for(lambda: rows(node, "web")["srv"][4] == "DONE" and rows(node, "web")["srv"],
                   what="up for start_seconds")
    assert (row[4], row[5], row[6], row[9]) == ("DONE", str(new), "2", "-"), row
    assert f"web:srv: start by hand, asked by uid {os.getuid()} (pid " in node.log_text()
    result = node.clinit("--start", "web", "srv")
    assert (result.returncode, result.stdout) == (0, f"web:srv is running already (pid {new})\n")


def test_a_tell_of_the_same_level_starts_a_stopped_entry_again(web):
    node = web
    node.clinit("--stop", "web", "srv")
    wait_for(lambda: not tagged(node, "srv"), what="the stop")
    assert node.settle("web", "run") == "DONE"
    one_pid(node, "srv")
    assert rows(node, "web")["srv"][9] == "-"


def test_start_runs_a_finished_once_entry_again(web):
    node = web
    wait_for(lambda: node.out_lines() == ["ran"], what="the once entry's run")
    result = node.clinit("--start", "web", "job")
    assert (result.returncode, result.stdout) == (0, "starting web:job\n"), result.stderr
    wait_for(lambda: node.out_lines() == ["ran", "ran"], what="its second run")
    wait_for(lambda: rows(node, "web")["job"][6] == "2", what="two starts")
    assert node.status() == "web run DONE\n"


def test_refusals_say_why(web):
    node = web
    for flag in ("--stop", "--start"):
        result = node.clinit(flag, "web", "elsewhere")
        assert (result.returncode, result.stderr) == (
            1, "clinit: web:elsewhere is not part of the level of group web (run)\n"
        )
        result = node.clinit(flag, "nosuch", "x")
        assert (result.returncode, result.stderr) == (1, "clinit: no such group: nosuch\n")
        result = node.clinit(flag, "web")
        assert result.returncode == 2 and f"{flag} takes a GROUP and a TAG" in result.stderr
        result = node.clinit(flag, "-w", "web", "srv")
        assert result.returncode == 2
    node.tell("slow", "up")  # its wait entry waits for the gate: the group is moving
    for flag in ("--stop", "--start"):
        result = node.clinit(flag, "slow", "svc")
        assert result.returncode == 1 and result.stderr == (
            "clinit: group slow is moving (STARTING, to level up):"
            " try again once it has settled (clinit -w slow up)\n"
        )
    open(os.path.join(node.dir, "gate"), "w").close()
    assert node.client().wait("slow", "up", timeout=20) == "DONE"
    assert node.clinit("--stop", "slow", "svc").returncode == 0


def test_stop_ends_a_crash_loop(node):
    node.write_cltab(settings(node, *FAST, ":::respawn_hold:60") + "flap:flapper:1:respawn:exit 1\n")
    node.start()
    node.tell("flap", "1")
    wait_for(lambda: "held back" in rows(node, "flap")["flapper"][9], what="the hold-back")
    result = node.clinit("--start", "flap", "flapper")
    assert result.returncode == 1 and "is held back (respawning too rapidly; " in result.stderr
    assert node.clinit("--stop", "flap", "flapper").stdout == "stopping flap:flapper\n"
    row = rows(node, "flap")["flapper"]
    assert (row[4], row[9]) == ("CONFIGURED", "stopped by hand"), row
    starts = node.starts("flapper")
    assert node.clinit("--start", "flap", "flapper").returncode == 0
    wait_for(lambda: node.starts("flapper") > starts, what="a start by hand")


def test_a_stop_by_hand_is_forgotten_after_a_crash(node):
    node.write_cltab(
        settings(node, *FAST) + "web:srv:run:respawn:exec sleep 300\nweb:keep:run:respawn:exec sleep 300\n"
        "db:srv2:1:respawn:exec sleep 300\n"
    )
    node.start()
    assert node.settle("web", "run") == "DONE" and node.settle("db", "1") == "DONE"
    keep = one_pid(node, "keep")
    for group, tag in (("web", "srv"), ("db", "srv2")):
        assert node.clinit("--stop", group, tag).returncode == 0
        wait_for(lambda: not tagged(node, tag), what="the stop")
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)
    node.start()
    # as any service that vanished with the daemon: started again beside what was adopted
    one_pid(node, "srv")
    assert tagged(node, "keep") == [keep]
    wait_for(lambda: rows(node, "web")["srv"][4] == "DONE", what="srv DONE")
    assert rows(node, "web")["srv"][9] == "-"
    # and a group of which nothing was left is FAILED (its services died, as far as it can tell)
    assert node.status() == "web run DONE\ndb 1 FAILED\n" and not tagged(node, "srv2")


# ---- boot levels -----------------------------------------------------------------


BOOTED = (
    ":::boot:web:run\n"
    "web:gate:run:wait:while [ ! -e {dir}/gate ]; do sleep 0.05; done\n"
    "web:srv:run:respawn:exec sleep 300\n"
    "db:main:1:respawn:exec sleep 300\n"
)


def test_a_plain_daemon_boots_its_groups_and_answers_before_they_settle(node):
    node.write_cltab(settings(node, *FAST) + BOOTED.format(dir=node.dir))
    node.start()  # returns once the daemon answers: the gate is shut, web cannot have settled
    assert node.status() == "web run STARTING\n"
    assert "boot: telling web level run" in node.log_text()
    open(os.path.join(node.dir, "gate"), "w").close()
    assert node.client().wait("web", "run", timeout=20) == "DONE"
    srv = one_pid(node, "srv")
    assert "db" not in node.status(), "a group without a boot line is not told"
    node.shutdown()
    assert not alive(srv), "the daemon's stop brings the node down"


def test_ready_comes_once_the_daemon_listens_not_once_its_boot_groups_settle(node):
    node.write_cltab(settings(node, *FAST) + BOOTED.format(dir=node.dir))
    path = os.path.join(node.dir, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(20)
        node.start(env={"NOTIFY_SOCKET": path})  # what systemd gives a Type=notify service
        assert "READY=1" in listener.recv(4096).decode().split("\n")
    assert node.status() == "web run STARTING\n", "the gate is shut: web has not settled"
    open(os.path.join(node.dir, "gate"), "w").close()
    assert node.client().wait("web", "run", timeout=20) == "DONE"


def test_a_detached_daemon_returns_before_its_boot_groups_settle(node):
    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab(settings(node, *FAST, f":::pidfile:{pidfile}") + BOOTED.format(dir=node.dir))
    result = subprocess.run(
        [sys.executable, CLINIT, "-c", node.cltab, "-d", "-b"], cwd=node.dir, env=node.env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    try:
        assert node.status() == "web run STARTING\n"
        open(os.path.join(node.dir, "gate"), "w").close()
        assert node.client().wait("web", "run", timeout=20) == "DONE"
    finally:
        assert node.clinit("-k", "-w", "-t", "30").returncode == 0
    assert not tagged(node, "srv")


def test_after_kill_9_restored_groups_keep_their_state_and_the_others_boot(node):
    node.write_cltab(settings(node, *FAST) + BOOTED.format(dir=node.dir))
    open(os.path.join(node.dir, "gate"), "w").close()
    node.start()
    assert node.client().wait("web", "run", timeout=20) == "DONE"
    srv = one_pid(node, "srv")
    # a boot line added while the daemon runs is the next start's, not a reread's
    node.write_cltab(settings(node, *FAST) + ":::boot:db:1\n" + BOOTED.format(dir=node.dir))
    assert node.clinit().returncode == 0 and not tagged(node, "main")
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)
    node.start()
    main = one_pid(node, "main")
    assert node.client().wait("db", "1", timeout=20) == "DONE"
    assert node.client().wait("web", "run", timeout=20) == "DONE"
    assert tagged(node, "srv") == [srv], "web restored: its service adopted, not started again"
    assert node.starts("srv") == 1 and node.starts("gate") == 1
    assert "group web was restored: not told its boot level run" in node.log_text()
    assert node.status() == "web run DONE\ndb 1 DONE\n"
    node.shutdown()
    assert not alive(srv) and not alive(main)


# ---- CLINIT_CLTAB ------------------------------------------------------------------


def run(node, *args, cwd, **env):
    """The clinit command with no -c, in ``cwd``, with ``env`` added; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, CLINIT, *args], cwd=cwd, env=dict(node.env(), **env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )


def test_clinit_cltab_names_the_cltab_of_the_command_and_the_daemon(node, tmp_path_factory):
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))
    node.write_cltab(settings(node, *FAST) + "web:srv:run:respawn:exec sleep 300\n")
    named = {"CLINIT_CLTAB": node.cltab}
    result = run(node, "--check", cwd=elsewhere, **named)
    assert (result.returncode, result.stdout) == (0, f"{node.cltab}: ok, 1 entry in 1 group\n"), result.stderr
    daemon = subprocess.Popen(
        [sys.executable, CLINIT, "-d"], cwd=node.dir, env=dict(node.env(), **named),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    node.daemon = daemon  # cleanup's
    wait_for(lambda: node.client().alive() or daemon.poll() is not None, what="the daemon")
    assert daemon.poll() is None
    result = run(node, "-w", "web", "run", cwd=elsewhere, **named)
    assert (result.returncode, result.stdout) == (0, "web run DONE\n"), result.stderr
    assert run(node, "-S", "web", "run", cwd=elsewhere, **named).returncode == 0
    assert run(node, "-l", cwd=elsewhere, **named).stdout.startswith("web\tsrv\trun\trespawn\tDONE\t")
    srv = one_pid(node, "srv")
    inherited = f"CLINIT_CLTAB={node.cltab}".encode()
    wait_for(lambda: inherited in environ_of(srv), what="CLINIT_CLTAB in the entry's environment")
    result = run(node, "-c", node.cltab, "-l", cwd=elsewhere, CLINIT_CLTAB="/nonexistent/cltab")
    assert result.returncode == 0, "-c wins over CLINIT_CLTAB"
    result = run(node, "-l", cwd=elsewhere, CLINIT_CLTAB="/nonexistent/cltab")
    assert result.returncode == 6 and "/nonexistent/cltab: cannot read" in result.stderr
    assert run(node, "-k", "-w", "-t", "30", cwd=elsewhere, **named).returncode == 0
    daemon.wait(10)
    assert not alive(srv)


def test_clinit_cltab_for_the_python_api(node, monkeypatch):
    from cluster_init import ClusterInit

    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab(settings(node, *FAST, f":::pidfile:{pidfile}") + "web:srv:run:respawn:exec sleep 300\n")
    monkeypatch.setenv("CLINIT_CLTAB", node.cltab)
    monkeypatch.setenv(*node.mark.split("=", 1))  # cleanup finds what the daemon starts
    monkeypatch.chdir(node.dir)
    assert ClusterInit.client().conf("socket") == node.socket
    client = ClusterInit()  # no daemon answers: starts one, on $CLINIT_CLTAB
    try:
        assert client.cltab == node.cltab and client.alive()
        client.tell("web", "run")
        assert client.wait("web", "run", timeout=20) == "DONE"
        assert ClusterInit.status(clstat=node.clstat) == "web run DONE\n"
    finally:
        client.shutdown()
    wait_for(lambda: not client.lock_held(), what="the daemon's exit")
