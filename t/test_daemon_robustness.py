"""What clients and the system may do to the daemon, and what it gives children."""

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from cluster_init import ClusterInit, DaemonError
from cluster_init.protocol import MAX_REQUEST

from daemon_rig import CLINIT, alive, marked_pids, raw, wait_for
from realproc import environ_of, status_field


def test_half_a_line_delays_nobody(node):
    node.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.connect(node.socket)
        slow.sendall(b"tell hello")  # and never the rest
        started = time.monotonic()
        for _ in range(5):
            assert node.client().ping().startswith("clinit ")
        assert node.settle("scramjet", "1") == "DONE"
        assert time.monotonic() - started < 5
        slow.sendall(b"grp 1\n")  # it may still finish, and be served
        slow.settimeout(10)
        assert slow.recv(4096) == b"ok level transition started\n"


def test_request_without_newline_before_eof(node):
    node.start()
    assert raw(node, b"ping", shut=True).startswith(b"ok clinit ")


def test_too_long_request(node):
    node.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(node.socket)
        try:
            conn.sendall(b"x" * (MAX_REQUEST + 70000))
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = conn.recv(4096)
    assert answer == f"error request longer than {MAX_REQUEST} bytes\n".encode()
    assert node.client().alive()


@pytest.mark.parametrize(
    "request_line, message",
    [
        (b"launch missiles\n", b"error unknown request 'launch'"),
        (b"tell a:b 1\n", b"error bad group 'a:b'"),
        (b"tell hellogrp \x01\n", b"error bad level"),
        (b"tell hellogrp\n", b"error usage: tell GROUP LEVEL"),
        (b"tell  hellogrp 1\n", b"error usage: tell GROUP LEVEL"),
        (b"shutdown now\n", b"error usage: shutdown"),
        (b"\xff\xfe\n", b"error request is not UTF-8"),
        (b"\n", b"error unknown request ''"),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(node, request_line, message):
    node.start()
    assert raw(node, request_line).startswith(message)
    assert node.client().alive(), "the daemon serves the next client"
    assert "client error" in node.log_text()


def test_clients_that_go_away(node):
    node.start()
    for _ in range(20):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(node.socket)
        conn.close()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(node.socket)
    conn.sendall(b"wait hellogrp 3\n")  # a waiter that gives up
    conn.close()
    assert node.settle("hellogrp", "1") == "DONE"
    assert node.client().alive()


def test_stale_socket_is_replaced(node):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(node.socket)
    stale.close()  # the file stays; nobody answers
    assert stat.S_ISSOCK(os.lstat(node.socket).st_mode)
    node.start()
    assert node.settle("scramjet", "1") == "DONE"


def test_live_socket_refuses_a_second_daemon(node):
    node.start()
    second = subprocess.run(
        [sys.executable, CLINIT, "-d", "-c", node.cltab], env=node.env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1
    assert f"another clinit daemon (pid {node.daemon.pid}) is already running on {node.socket}" in second.stderr
    assert node.client().alive(), "the first one is untouched"


def test_not_a_socket_is_left_alone(node):
    with open(node.socket, "w") as stream:
        stream.write("precious")
    result = subprocess.run(
        [sys.executable, CLINIT, "-d", "-c", node.cltab], env=node.env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1 and "is not a socket" in result.stderr
    assert open(node.socket).read() == "precious"


def test_socket_is_for_its_owner_only(node):
    node.start()
    assert stat.S_IMODE(os.stat(node.socket).st_mode) & 0o077 == 0


def test_socket_directory_is_created(node):
    deep = os.path.join(node.dir, "run", "clinit")
    node.write_cltab(open(node.cltab).read().replace(f":::socket:{node.socket}", f":::socket:{deep}/clinit.s"))
    node.socket = f"{deep}/clinit.s"
    node.start()
    assert stat.S_IMODE(os.stat(deep).st_mode) == 0o755


def children(pid):
    """The pids whose parent is ``pid``."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as stream:
        return [int(word) for word in stream.read().split()]


def test_children_inherit_no_daemon_descriptor(node):
    """Looked at in the shell while it waits for its own child: nothing else opens files then."""
    node.write_cltab(open(node.cltab).read() + f"fdgrp:fd1:1:once:echo $$ > {node.out}; sleep 30\n")
    node.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as watcher:
        watcher.connect(node.socket)  # the daemon holds a client socket open meanwhile
        node.tell("fdgrp", "1")
        pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="fd1's pid")
        (sleeper,) = wait_for(lambda: children(pid), what="the shell to start sleep and wait for it")
        assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.getpgid(pid) == pid, "own process group"
    assert int(status_field(pid, "SigIgn"), 16) == 0, "no signal the daemon ignores stays ignored"
    # the shell blocks signals while it waits; the mask it inherited is what its child got
    wait_for(lambda: os.readlink(f"/proc/{sleeper}/exe").endswith("/sleep"), what="sleep's exec")
    assert int(status_field(sleeper, "SigBlk"), 16) == 0 and int(status_field(sleeper, "SigIgn"), 16) == 0
    environ = environ_of(pid)
    assert {b"CLINIT_GROUP=fdgrp", b"CLINIT_TAG=fd1", b"CLINIT_LEVEL=1"} <= set(environ)
    assert node.mark.encode() in environ, "the daemon's environment is passed on"


def test_stop_is_graceful(node):
    """SIGINT first: a child that traps it can clean up."""
    command = f"trap 'echo got INT >> {node.out}; exit 0' INT; echo $$ > {node.out}; while :; do sleep 0.1; done"
    node.write_cltab(open(node.cltab).read() + f"trapgrp:trap1:1:once:{command}\n")
    node.start()
    node.tell("trapgrp", "1")
    wait_for(lambda: node.out_lines(), what="trap1 to start")
    node.tell("trapgrp", "2")
    wait_for(lambda: node.out_lines()[-1:] == ["got INT"], what="trap1 to see SIGINT")
    node.wait_status("trapgrp 2 DONE\n")


def test_api_constructor_starts_a_detached_daemon(node, monkeypatch):
    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab(f":::pidfile:{pidfile}\n" + open(node.cltab).read())
    monkeypatch.setenv(*node.mark.split("=", 1))
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(CLINIT) + "/lib")
    client = ClusterInit(cltab=node.cltab)
    assert client.alive()
    daemon_pid = int(client.ping().split()[-1])
    assert int(open(pidfile).read()) == daemon_pid
    assert ClusterInit(cltab=node.cltab).ping() == client.ping(), "a second call reuses it"
    client.tell("hellogrp", "1")
    assert client.wait("hellogrp", "1", timeout=10) == "DONE"
    assert client.status(group="hellogrp", level="1") == "DONE"
    with pytest.raises(DaemonError, match="no such group"):
        client.tell("nosuchgroup", "1")
    assert client.shutdown() == "all groups halting"
    wait_for(lambda: not alive(daemon_pid), what="the daemon to exit")
    assert marked_pids(node.mark) == []


def test_idle_daemon_does_not_wake(node):
    """No polling: with nothing to do, the daemon sleeps in select."""
    node.start()
    node.settle("pidgrp", "1")  # a live child (sleep 10) and nothing due soon
    switches = lambda: int(status_field(node.daemon.pid, "voluntary_ctxt_switches"))  # noqa: E731
    before = switches()
    time.sleep(1.0)  # measuring idleness takes idle time
    assert switches() - before <= 1


@pytest.mark.parametrize("line", [b"wait hellogrp 1 1_0\n", b"wait hellogrp 1 1e3\n", b"tell hellogrp up\xe2\x80\x8b\n"])
def test_odd_numbers_and_invisible_names_are_refused(node, line):
    node.start()
    assert raw(node, line).startswith(b"error bad ")


def test_shutdown_is_not_held_up_by_clients_that_do_not_read(node):
    node.write_cltab(open(node.cltab).read() + "".join(f"big:b{i}:1:wait:true\n" for i in range(3000)))
    node.start()
    stuck = []
    for _ in range(20):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(node.socket)
        conn.sendall(b"list\n")  # a long answer, never read
        stuck.append(conn)
    try:
        result = node.clinit("-k", "-w", "-t", "10")
        assert result.returncode == 0, result.stderr
    finally:
        for conn in stuck:
            conn.close()
