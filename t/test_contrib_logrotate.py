"""contrib/logrotate: copytruncate keeps a child's output and the log going.

A real logrotate run (skipped where logrotate is missing; Debian package
logrotate) on a copy of the snippet whose paths point into the test's
directory, while a detached daemon (-d -b, so there is a pid file for the
postrotate SIGHUP) logs, a child writes to its own output file beside the
log, and ``clinit --output -f`` follows that file through a pipe.
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from daemon_rig import CHECKOUT, CLINIT, marked_pids, wait_for
from realproc import alive

SNIPPET = os.path.join(CHECKOUT, "contrib", "logrotate")
LOGDIR = "/var/log/clinit"
PIDFILE = "/var/run/clinit/clinit.pid"


def directives():
    text = open(SNIPPET, encoding="utf-8").read()
    body = re.sub(r"(?m)^\s*#.*\n", "", text)
    head, _, block = body.partition("{")
    return head.split(), block


def test_snippet():
    paths, block = directives()
    assert paths == [f"{LOGDIR}/*.log", f"{LOGDIR}/*.out"]
    words = block.split()
    for needed in ("copytruncate", "missingok", "notifempty", "postrotate", "endscript"):
        assert needed in words, needed
    assert "create" not in words, "create and copytruncate exclude each other"
    script = block.split("postrotate", 1)[1].split("endscript", 1)[0]
    assert "HUP" in script and PIDFILE in script
    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_rotation_with_a_running_daemon_and_child(node):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (Debian package logrotate)")
    logdir = os.path.join(node.dir, "log")
    os.mkdir(logdir)
    log = os.path.join(logdir, "clinit.log")
    ticks = os.path.join(logdir, "ticker.tick.log")  # its own file, beside the log
    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab("\n".join([
        f":::socket:{node.socket}",
        f":::clstat:{node.clstat}",
        f":::log:{log}",
        f":::pidfile:{pidfile}",
        ":::term_delay:1",
        ":::kill_delay:1",
        # a child that holds its output file open for append, as long as it runs
        'ticker:tick:run:once:i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.02; done',
        "other:noop:run:wait:true",
    ]) + "\n")
    text = open(SNIPPET, encoding="utf-8").read()
    assert text.count(PIDFILE) >= 2 and LOGDIR in text
    config = os.path.join(node.dir, "logrotate.conf")
    with open(config, "w", encoding="utf-8") as stream:
        # (and never a real clinit.service of this host)
        copy = text.replace(PIDFILE, pidfile).replace(LOGDIR, logdir)
        stream.write(copy.replace("clinit.service", "clinit-test-absent.service"))
    os.chmod(config, 0o644)

    result = node.clinit("-d", "-b")
    assert result.returncode == 0, result.stderr
    daemon = int(open(pidfile).read())
    assert node.clinit("-w", "-t", "20", "ticker", "run").returncode == 0
    wait_for(lambda: os.path.getsize(ticks) > 100, what="ticks")
    follower = subprocess.Popen(
        [sys.executable, CLINIT, "-c", node.cltab, "--output", "-f", "ticker", "tick"], env=node.env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    wait_for(lambda: follower.stdout.readline().startswith(b"tick "), what="the follower")
    # a changed cltab, so that the postrotate SIGHUP leaves a trace: a reread
    node.write_cltab(open(node.cltab).read() + "# rotated\n")
    env = dict(node.env(), PATH="/usr/sbin:/usr/bin:/sbin:/bin")  # no systemd here to ask
    result = subprocess.run(
        ["logrotate", "-f", "-s", os.path.join(node.dir, "state"), config],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert open(ticks + ".1").read().startswith("tick 1\n")
    assert "started" in open(log + ".1").read()
    # the child writes on into the emptied file, from its start (no hole of NULs)
    wait_for(lambda: os.path.getsize(ticks) > 20, what="new ticks after the rotation")
    with open(ticks, "rb") as stream:
        assert stream.read(5) == b"tick "
    before = os.path.getsize(ticks)
    while True:  # the follower goes on into the emptied file: what it prints is what the file has now
        line = follower.stdout.readline()
        assert line, follower.stderr.read()
        with open(ticks, "rb") as stream:
            if line in stream.read().splitlines(True) and os.path.getsize(ticks) > before:
                break
    follower.send_signal(signal.SIGINT)
    assert follower.wait(10) == 130
    assert b"was truncated; following it from its start" in follower.stderr.read()
    follower.stdout.close()
    follower.stderr.close()
    # the daemon had the SIGHUP, lived through it and logs on, into the emptied log
    wait_for(lambda: "reread" in open(log).read(), what="the reread that SIGHUP makes")
    assert alive(daemon) and node.client().alive()
    assert node.clinit("-w", "-t", "20", "other", "run").returncode == 0
    wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 0, what="the log")
    with open(log, "rb") as stream:
        head = stream.read(200)
    assert not head.startswith(b"\0") and b"other" in open(log, "rb").read()

    assert node.clinit("-k", "-w", "-t", "30").returncode == 0
    wait_for(lambda: not alive(daemon), what="the daemon to exit")
    assert marked_pids(node.mark) == []
