"""The loop never loses a signal, never blocks, never gets locked out."""

import os
import resource
import shutil
import select
import signal
import subprocess
import sys
import time

import pytest

from daemon_rig import CLINIT, alive, ask, connect, marked_pids, settings, wait_for
from realproc import status_field


def big_level(node, count, group="big", command="exec sleep 1000", mode="once"):
    return "".join(f"{group}:{group}{i}:1:{mode}:{command}\n" for i in range(count))


def daemon_state(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        return stream.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
def test_sigterm_during_a_big_start_is_not_lost(node):
    node.write_cltab(settings(node) + big_level(node, 500))
    node.start()
    node.tell("big", "1")
    wait_for(lambda: node.log_text().count(": started pid") >= 50, what="the start to be under way")
    for _ in range(20):
        node.daemon.send_signal(signal.SIGHUP)  # a burst, among hundreds of SIGCHLD
    node.daemon.send_signal(signal.SIGTERM)
    assert node.daemon.wait(60) == 0
    assert "shutting down (signal SIGTERM)" in node.log_text()
    assert marked_pids(node.mark) == []


@pytest.mark.slow
def test_status_is_answered_while_a_big_level_starts(node):
    """No timing: the answer to a status sent just after the tell comes before the group is DONE."""
    node.write_cltab(settings(node) + big_level(node, 1000))
    node.start()
    with connect(node) as teller:
        teller.sendall(b"tell big 1\n")
        assert teller.recv(4096).startswith(b"ok level transition started")
    answer = ask(node, "status")
    assert answer.startswith("ok 1 group(s)\n")
    assert answer.split("\n")[1] in ("big 1 STARTING", "big 1 CHECKING"), answer
    assert node.client().wait("big", "1", timeout=120) == "DONE"
    assert node.shutdown(timeout=60) == "all groups halting"


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGUSR2, signal.SIGQUIT, signal.SIGALRM, signal.SIGPIPE, signal.SIGTSTP, signal.SIGTTIN,
        signal.SIGTTOU, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGIO, signal.SIGPWR,
        signal.SIGSTKFLT, signal.SIGSYS, signal.SIGTRAP, signal.SIGRTMIN, signal.SIGRTMAX,
    ],
)
def test_stray_signals_are_harmless(node, signum):
    node.start()
    node.settle("pidgrp", "1")
    node.daemon.send_signal(signum)
    node.daemon.send_signal(signal.SIGUSR1)  # its dump comes after: the stray signal was handled
    wait_for(lambda: "state dump" in node.log_text(), what="the dump")
    assert node.daemon.poll() is None
    assert daemon_state(node.daemon.pid) in "SR", "not stopped"
    assert node.settle("scramjet", "1") == "DONE"


def test_sigusr1_dumps_the_state(node):
    node.start()
    node.settle("pidgrp", "1")
    node.settle("hellogrp", "f")
    node.daemon.send_signal(signal.SIGUSR1)
    wait_for(lambda: "group test: never told" in node.log_text().partition("state dump")[2] and "test:test6" in node.log_text().partition("state dump")[2], what="the dump")
    dump = node.log_text().split("state dump")[-1]
    assert "group pidgrp: level 1 DONE" in dump
    assert "group hellogrp: level f FAILED" in dump
    assert "pidgrp:pid1: DONE, pid " in dump and "started 1 time(s), last exit -" in dump
    assert "hellogrp:htest2: FAIL, pid -, started 1 time(s), last exit 1, " in dump
    assert "hellogrp:hello2: CONFIGURED, pid -, started 0 time(s), last exit -\n" in dump, "every entry"
    assert "group scramjet: never told" in dump


def test_idle_connections_never_lock_the_administrator_out(node):
    node.start()
    idle = [connect(node) for _ in range(600)]
    try:
        result = node.clinit("-w", "scramjet", "1")
        assert (result.returncode, result.stdout) == (0, "scramjet 1 DONE\n"), result.stderr
        evicted = 0
        for sock in idle[:100]:
            sock.settimeout(0.2)
            try:
                if sock.recv(4096).startswith(b"error busy: closed to make room"):
                    evicted += 1
            except (TimeoutError, ConnectionResetError):
                pass
        assert evicted > 0, "the oldest idle connections made room"
        result = node.clinit("-k", "-w", "-t", "30")
        assert result.returncode == 0, result.stderr
    finally:
        for sock in idle:
            sock.close()
    node.daemon.wait(30)


def test_waiting_clients_never_lock_the_administrator_out(node):
    node.start()
    waiters = []
    try:
        for _ in range(520):
            sock = connect(node)
            sock.sendall(b"wait hellogrp 3\n")  # never told: they would wait for ever
            waiters.append(sock)
        answered = set()

        def answers():
            readable, _, _ = select.select([s for s in waiters if s not in answered], [], [], 0.05)
            for sock in readable:
                # busy: no room among the waiters, or evicted to make room at accept
                assert sock.recv(4096).startswith(b"error busy: ")
                answered.add(sock)
            return len(answered) >= 264

        wait_for(answers, what="264 busy answers")
        assert len(answered) == 264, "past the waiters' own limit, a wait is answered busy; 256 wait"
        result = node.clinit("scramjet", "1")
        assert result.returncode == 0, result.stderr
        node.wait_status("1 DONE\n", group="scramjet")
        result = node.clinit("-w", "scramjet", "1")  # one more wait: busy, and said so
        assert (result.returncode, result.stderr) == (1, "clinit: busy: too many waiting clients (256)\n")
        result = node.clinit("-k", "-w", "-t", "30")
        assert result.returncode == 0, result.stderr
        waiting = next(sock for sock in waiters if sock not in answered)
        waiting.settimeout(10)
        assert waiting.recv(4096) == b"error the daemon has shut down\n"
    finally:
        for sock in waiters:
            sock.close()
    node.daemon.wait(30)


def test_busy_is_not_no_daemon(node, monkeypatch):
    """A client refused for lack of room hears "busy" (exit 1), never "no daemon"."""
    from cluster_init import cli
    from cluster_init.errors import Busy

    from cluster_init.client import Client

    def busy_request(self, verb, *args, **kwargs):
        raise Busy("busy: too many clients (512); try again")

    node.start()
    monkeypatch.setattr(Client, "request", busy_request)
    assert cli.main(["-c", node.cltab, "scramjet", "1"]) == 1


def test_wait_has_a_deadline(node):
    node.start()
    started = time.monotonic()
    result = node.clinit("-w", "-t", "0.5", "hellogrp", "3")  # hello3 takes 1.5 s
    assert result.returncode == 124
    assert time.monotonic() - started < 10
    assert "did not settle at level 3" in result.stderr
    answer = ask(node, "wait hellogrp 9 0.2")
    assert answer == "error timeout: hellogrp did not settle at level 9 within 0.2 s\n"


def test_children_get_the_original_open_files_limit(node):
    """The daemon raises its soft limit to the hard one; children get the original back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"the hard open files limit is only {hard}")
    node.write_cltab(settings(node) + big_level(node, 400) + f"probe:probe:1:wait:echo $$ > {node.out}; sleep 30\n")

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    node.start(preexec_fn=low_limit)
    assert limits(node.daemon.pid) == (hard, hard)
    idle = [connect(node) for _ in range(700)]
    try:
        node.tell("big", "1")  # 400 report pipes at once, beside 700 connections
        node.tell("probe", "1")
        assert node.client().wait("big", "1", timeout=120) == "DONE"
        pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="the probe")
        assert limits(pid) == (1024, hard)
    finally:
        for sock in idle:
            sock.close()
    assert "Too many open files" not in node.log_text()
    assert node.shutdown(timeout=60) == "all groups halting"


def limits(pid):
    with open(f"/proc/{pid}/limits", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("Max open files"):
                words = line.split()
                return int(words[3]), int(words[4])
    raise KeyError("Max open files")


def test_clstat_is_rewritten_after_a_failed_write(node):
    state_dir = os.path.join(node.dir, "state")
    os.mkdir(state_dir)
    clstat = os.path.join(state_dir, "clstat")
    node.write_cltab(settings(node).replace(node.clstat, clstat) + "g:t:1:wait:true\ng:u:2:wait:true\n")
    node.start()
    node.settle("g", "1")
    os.rename(state_dir, state_dir + ".away")
    with open(state_dir, "w") as stream:  # a file where the directory was: every write fails, even root's
        stream.write("in the way")
    assert node.settle("g", "2") == "DONE"
    wait_for(lambda: "cannot write" in node.log_text(), what="the failure to be logged")
    os.unlink(state_dir)
    os.rename(state_dir + ".away", state_dir)
    wait_for(lambda: open(clstat).read() == "Cluster::Init::Group g 2 DONE\n", timeout=5, what="the retry")
    assert node.log_text().count("cannot write") == 1, "logged once, not at every retry"


def test_shutdown_survives_a_clstat_it_cannot_remove(node):
    state_dir = os.path.join(node.dir, "state")
    os.mkdir(state_dir)
    node.write_cltab(settings(node).replace(node.clstat, os.path.join(state_dir, "clstat")) + "g:t:1:wait:true\n")
    node.start()
    node.settle("g", "1")
    os.rename(state_dir, state_dir + ".away")
    with open(state_dir, "w") as stream:
        stream.write("in the way")
    node.shutdown()
    assert node.daemon.returncode == 0
    assert "Traceback" not in node.daemon_stderr()
    assert "cannot remove" in node.log_text()


def test_a_log_on_a_full_disk_costs_one_line(node):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    node.write_cltab(settings(node).replace(node.log, "/dev/full") + "g:t:1:wait:true\n")
    node.start()
    for _ in range(20):
        node.tell("g", "1")
    node.shutdown()
    stderr = node.daemon_stderr()
    assert "Traceback" not in stderr
    assert stderr.count("cannot write log /dev/full: No space left on device") == 1, stderr


def test_a_broken_cltab_is_parsed_once(node):
    node.start()
    with open(node.cltab + ".new", "wb") as stream:
        stream.write(os.urandom(200000).replace(b"\n", b"x") + b"\n" * 100)
    os.replace(node.cltab + ".new", node.cltab)
    for _ in range(10):
        result = node.clinit("-s", node.socket, "scramjet", "1")
        assert result.returncode == 0 and f"cltab {node.cltab} refused, acting on the last good one" in result.stderr
    assert node.log_text().count("cltab refused") == 1


def test_a_fifo_as_cltab_never_hangs_the_daemon(node):
    node.start()
    os.unlink(node.cltab)
    os.mkfifo(node.cltab)
    node.daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "not a regular file" in node.log_text(), what="the refusal")
    from cluster_init.client import Client

    assert Client(cltab=node.cltab, socket=node.socket).alive()
    result = node.clinit("-s", node.socket, "scramjet", "1")
    assert result.returncode == 0, "the daemon acts on the last good cltab"
    assert f"warning: cltab {node.cltab} refused, acting on the last good one: {node.cltab}: not a regular file" in result.stderr
    assert node.clinit("-s", node.socket).returncode == 6, "a reread says it was refused"


def test_a_huge_cltab_is_refused(node):
    node.start()
    with open(node.cltab, "a") as stream:
        stream.truncate(17 * 1024 * 1024)
    result = node.clinit("-s", node.socket, "scramjet", "1")
    assert result.returncode == 0
    assert "refused, acting on the last good one" in result.stderr and "larger than 16 MiB" in result.stderr


def test_one_daemon_per_socket_even_when_the_socket_was_deleted(node):
    node.start()
    os.unlink(node.socket)
    second = subprocess.run(
        [sys.executable, CLINIT, "-d", "-c", node.cltab], env=node.env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1
    assert f"another clinit daemon (pid {node.daemon.pid}) is already running" in second.stderr
    node.daemon.send_signal(signal.SIGHUP)  # the heartbeat does the same, later
    wait_for(lambda: os.path.exists(node.socket), what="the socket to be bound again")
    assert node.settle("scramjet", "1") == "DONE"
    assert "was deleted or replaced: listening on it again" in node.log_text()
    assert alive(node.daemon.pid)


def test_no_descriptor_left_is_no_busy_loop(node):
    """EMFILE at accept: accepting pauses (one log line a pause), the administrator still gets in."""
    def tight():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    node.start(preexec_fn=tight)
    idle = [connect(node) for _ in range(80)]
    try:
        time.sleep(1.5)  # measuring that nothing spins takes time
        assert node.log_text().count("accept failed") <= 6, "paused, not spinning"
        result = node.clinit("-k", "-w", "-t", "30", timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        for sock in idle:
            sock.close()
    node.daemon.wait(30)


def test_a_removed_socket_directory_is_made_again_and_locked(node):
    run = os.path.join(node.dir, "run")
    node.write_cltab(open(node.cltab).read().replace(f":::socket:{node.socket}", f":::socket:{run}/clinit.s"))
    node.socket = os.path.join(run, "clinit.s")
    node.start()
    shutil.rmtree(run)  # the socket, its lock file and their directory
    node.daemon.send_signal(signal.SIGHUP)  # the heartbeat does the same, later
    wait_for(lambda: os.path.exists(node.socket), what="the socket to be bound again")
    assert node.settle("scramjet", "1") == "DONE"
    second = subprocess.run(
        [sys.executable, CLINIT, "-d", "-c", node.cltab], env=node.env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1 and "is already running" in second.stderr
