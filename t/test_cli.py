"""The clinit command: usage, exit statuses, and the added flags."""

import os
import socket
import subprocess
import sys

import pytest

from daemon_rig import CLINIT


@pytest.mark.parametrize(
    "args",
    [
        ["a", "b", "c"],
        ["-t", "5", "g", "1"],
        ["-b"],
        ["-p", "/tmp/x.pid"],
        ["-w"],
        ["-d", "g", "1"],
        ["-k", "g", "1"],
        ["-w", "-t", "-1", "g", "1"],
        ["--no-such-flag"],
    ],
)
def test_usage_errors_exit_2(node, args):
    result = node.clinit(*args)
    assert result.returncode == 2
    assert "usage: clinit" in result.stderr and result.stdout == ""


def test_help_goes_to_stdout(node):
    result = node.clinit("-h")
    assert result.returncode == 0
    assert "usage: clinit" in result.stdout and "--background" in result.stdout


def test_no_daemon_exits_3(node):
    for args in (["g", "1"], [], ["-k"]):
        result = node.clinit(*args)
        assert result.returncode == 3, args
        assert "no clinit daemon answers on" in result.stderr


def test_error_answer_exits_1(node):
    node.start()
    result = node.clinit("nosuchgroup", "1")
    assert result.returncode == 1
    assert result.stderr == "clinit: no such group: nosuchgroup\n"


def test_wait_exit_statuses(node):
    node.start()
    done = node.clinit("-w", "hellogrp", "1")
    assert (done.returncode, done.stdout) == (0, "level transition started\nhellogrp 1 DONE\n")
    failed = node.clinit("-w", "hellogrp", "f")
    assert (failed.returncode, failed.stdout.splitlines()[-1]) == (1, "hellogrp f FAILED")
    passed = node.clinit("-w", "hellogrp", "t")
    assert passed.returncode == 0
    slow = node.clinit("-w", "-t", "0.3", "hellogrp", "3")  # hello3 sleeps 1.5 s
    assert slow.returncode == 124
    assert "did not settle" in slow.stderr


def test_wait_for_a_level_the_group_left(node):
    node.start()
    node.tell("hellogrp", "3")
    client = node.client()
    node.tell("hellogrp", "1")
    with pytest.raises(Exception, match="settled at level 1"):
        client.wait("hellogrp", "3", timeout=10)


def test_group_defaults_to_hostname(node):
    host = socket.gethostname()
    node.write_cltab(open(node.cltab).read() + f"{host}:hostentry:1:wait:true\n")
    node.start()
    result = node.clinit("-w", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"{host} 1 DONE\n")


def test_verbose_prints_status(node):
    node.start()
    node.settle("scramjet", "1")
    result = node.clinit("-v")
    assert result.stdout == "scramjet 1 DONE\n"


def test_socket_flag(node, tmp_path):
    """-s names the socket when the cltab does not."""
    node.write_cltab(f":::clstat:{node.clstat}\n:::log:{node.log}\ng:t:1:wait:true\n")
    sock = str(tmp_path / "flag.s")
    with open(node.stderr_path, "w") as stderr:
        node.daemon = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", node.cltab, "-s", sock],
            env=node.env(), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
        )
    from daemon_rig import wait_for

    wait_for(lambda: os.path.exists(sock), what="socket from -s")
    result = node.clinit("-s", sock, "-w", "g", "1")
    assert result.returncode == 0, result.stderr
    assert node.clinit("-s", sock, "-k", "-w").returncode == 0
    node.daemon.wait(20)


def test_runs_from_a_checkout_without_installation(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-S", CLINIT, "--version"], env=env, capture_output=True, text=True, cwd=str(tmp_path)
    )
    assert result.returncode == 0 and result.stdout.startswith("clinit ")
