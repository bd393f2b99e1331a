"""Port of 70clinit.t: the same through the clinit command line."""

import os
import sys

from daemon_rig import CLINIT, alive, marked_pids, wait_for


def test_clinit_command(node):
    node.start([sys.executable, CLINIT, "-c", node.cltab, "-d"])
    result = node.clinit("pidgrp", "1")
    assert result.returncode == 0 and result.stdout == "level transition started\n"
    wait_for(lambda: "pidgrp 1 DONE" in node.clinit("-v").stdout, what="clinit -v shows DONE")
    pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="the pid")
    assert alive(pid)
    result = node.clinit("-k")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not os.path.exists(node.clstat), what="clstat to go")
    assert not alive(pid)
    assert node.out_lines() == [str(pid)]
    node.daemon.wait(20)


def test_detached_daemon_and_kill_wait(node):
    pidfile = os.path.join(node.dir, "clinit.pid")
    result = node.clinit("-d", "-b", "-p", pidfile)
    assert result.returncode == 0, result.stderr
    assert node.client().alive(), "-d -b returns only once the socket answers"
    daemon_pid = int(open(pidfile).read())
    assert alive(daemon_pid) and daemon_pid in marked_pids(node.mark)
    assert os.getsid(daemon_pid) != os.getsid(0), "detached into its own session"

    again = node.clinit("-d", "-b", "-p", pidfile)
    assert again.returncode == 1
    assert "already" in again.stderr

    result = node.clinit("-w", "pidgrp", "1")
    assert result.returncode == 0 and result.stdout.endswith("pidgrp 1 DONE\n")
    result = node.clinit("-k", "-w", "-t", "30")
    assert result.returncode == 0, result.stderr
    assert not alive(daemon_pid), "-k -w returns once the daemon has exited"
    assert not os.path.exists(pidfile) and not os.path.exists(node.socket)
    assert marked_pids(node.mark) == []


def test_detached_daemon_reports_why_it_cannot_start(node):
    node.write_cltab(open(node.cltab).read() + "x:y:1:never:true\n")
    result = node.clinit("-d", "-b", "-p", os.path.join(node.dir, "pid"))
    assert result.returncode == 6, "the cltab was refused"
    assert "unknown mode 'never'" in result.stderr
    assert not os.path.exists(node.socket)


def test_long_flags(node):
    pidfile = os.path.join(node.dir, "clinit.pid")
    result = node.clinit("--daemon", "--background", "--pidfile", pidfile)
    assert result.returncode == 0, result.stderr
    result = node.clinit("--wait", "--timeout", "20", "--verbose", "hellogrp", "t")
    assert result.returncode == 0
    assert result.stdout == "hellogrp t PASSED\nhellogrp t PASSED\n"
    result = node.clinit("--kill", "--wait")
    assert result.returncode == 0


def test_stale_pidfile_is_replaced(node):
    import subprocess

    pidfile = os.path.join(node.dir, "clinit.pid")
    gone = subprocess.Popen(["true"])
    gone.wait()
    with open(pidfile, "w") as stream:
        stream.write(f"{gone.pid}\n")  # a daemon that died without cleaning up
    result = node.clinit("-d", "-b", "-p", pidfile)
    assert result.returncode == 0, result.stderr
    assert int(open(pidfile).read()) != gone.pid
    assert node.clinit("-k", "-w").returncode == 0
