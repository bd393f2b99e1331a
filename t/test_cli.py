"""The clinit command: usage, exit statuses, and the added flags."""

import os
import socket
import subprocess
import sys

import pytest

from daemon_rig import CLINIT, wait_for


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
    assert (done.returncode, done.stdout) == (0, "hellogrp 1 DONE\n"), "-w prints one line"
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


def test_kill_wait_returns_once_the_foreground_daemons_process_has_exited(node):
    """clinit(8): -k -w waits "until the daemon process has exited"; under clinit -d (no
    -b) too, however long the process takes to end after its groups are down."""
    # the process that ran the daemon lingers after it, as an interpreter's exit can under load
    lingering = "import sys, time; from cluster_init.cli import main; code = main(); time.sleep(3); sys.exit(code)"
    node.start([sys.executable, "-c", lingering, "-d", "-c", node.cltab])
    result = node.clinit("-k", "-w", "-t", "30")
    assert result.returncode == 0, result.stderr
    try:
        node.daemon.wait(1)
    except subprocess.TimeoutExpired:
        pytest.fail("-k -w returned while the daemon's process lived on")


def test_runs_from_a_checkout_without_installation(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-S", CLINIT, "--version"], env=env, capture_output=True, text=True, cwd=str(tmp_path)
    )
    assert result.returncode == 0 and result.stdout.startswith("clinit ")


def test_help_shows_group_and_level(node):
    result = node.clinit("-h")
    usage = result.stdout.split("\n\n")[0]
    assert "[GROUP] LEVEL" in usage and "--check" in usage
    assert "4 permission denied" in result.stdout and "6 the cltab was refused" in result.stdout


def test_unreadable_cltab_is_exit_6_not_no_daemon(node, tmp_path):
    node.start()
    result = node.clinit("-c", str(tmp_path / "nonexistent"), "-v")
    assert result.returncode == 6
    assert result.stderr == f"clinit: {tmp_path}/nonexistent: cannot read: No such file or directory\n"
    assert "no clinit daemon" not in result.stderr


def test_bad_setting_value_is_exit_6_with_its_line(node):
    node.start()
    node.write_cltab(":::term_delay:5s\n" + open(node.cltab).read())
    result = node.clinit("-v")
    assert result.returncode == 6
    assert f"{node.cltab}:1: setting term_delay wants a number of seconds, not '5s'" in result.stderr


def test_with_s_an_unreadable_cltab_is_a_warning(node, tmp_path):
    node.start()
    result = node.clinit("-c", str(tmp_path / "nonexistent"), "-s", node.socket, "-k", "-w")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "cannot read" in result.stderr
    node.daemon.wait(20)


def test_daemon_refusing_the_cltab_warns_a_tell_and_fails_a_reread(node):
    """A broken cltab never blocks a tell (issue 18): the daemon acts on the last good
    one and says so; a reread still exits 6 with every problem."""
    node.start()
    good = open(node.cltab).read()
    node.write_cltab(good + "g:t:1:sometimes:true\n")
    line = good.count("\n") + 1
    result = node.clinit("scramjet", "1")
    assert (result.returncode, result.stdout) == (0, "level transition started\n")
    assert result.stderr == (
        f"clinit: warning: cltab {node.cltab} refused, acting on the last good one: "
        f"{node.cltab}:{line}: unknown mode 'sometimes' (known: wait, once, respawn, test, off)\n"
    )
    result = node.clinit()  # a reread
    assert result.returncode == 6
    assert "cltab refused; still using the last good one" in result.stderr
    assert "unknown mode 'sometimes'" in result.stderr
    assert node.clinit("--check").returncode == 6


def test_daemon_exits_6_on_a_broken_cltab(node):
    node.write_cltab(open(node.cltab).read() + "g:t:1:sometimes:true\n")
    result = node.clinit("-d")
    assert result.returncode == 6
    assert "unknown mode 'sometimes'" in result.stderr


def test_permission_denied_is_exit_4(node):
    """EACCES on the socket (root connects whatever the mode: be nobody, who cannot reach it)."""
    from as_user import nobody, run_as
    from cluster_init import cli

    uid, gid = nobody()
    node.start()
    code, out, err = run_as(uid, gid, cli.main, ["-c", node.cltab, "-s", node.socket, "scramjet", "1"])
    assert code == 4, err
    assert f"cannot connect to {node.socket}: Permission denied" in err


def test_telling_a_level_without_entries_warns(node):
    node.start()
    node.settle("pidgrp", "1")
    result = node.clinit("pidgrp", "strat")
    assert result.returncode == 0
    assert result.stdout == "level transition started\n"
    assert result.stderr == (
        "clinit: warning: group pidgrp has no entries at level strat: all of its entries stop"
        " (its levels: 1; did you mean 1?)\n"
    )
    node.wait_status("strat DONE\n", group="pidgrp")


def test_api_hands_warnings_on(node):
    import warnings

    from cluster_init import ClinitWarning

    node.start()
    client = node.client()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert client.tell("pidgrp", "strat") == "level transition started"
    assert [w.category for w in caught] == [ClinitWarning]
    assert "no entries at level strat" in str(caught[0].message)
    assert client.last_warnings == (
        "group pidgrp has no entries at level strat: all of its entries stop (its levels: 1; did you mean 1?)",
    )


def test_check(node):
    result = node.clinit("--check")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{node.cltab}: ok, 22 entries in 7 groups\n"
    node.write_cltab(":::term_dealy:5\n" + open(node.cltab).read() + "g:t:1:sometimes:true\ng:u:1:wait\n")
    result = node.clinit("--check", "-v")
    assert result.returncode == 6
    lines = result.stderr.splitlines()
    assert lines[0].endswith(":33: unknown mode 'sometimes' (known: wait, once, respawn, test, off)")
    assert lines[1].endswith(":34: expected group:tag:levels:mode:command, found 4 field(s)")


def test_unknown_setting_is_a_warning_with_the_closest_name(node):
    """--check shows its warnings with or without -v (issue 18: a typo in a setting
    name must not pass unseen), and still exits 0; a tell shows them only with -v."""
    node.write_cltab(":::term_dealy:5\n" + open(node.cltab).read())
    warning = f"clinit: warning: {node.cltab}:1: unknown setting 'term_dealy' ignored (did you mean term_delay?)\n"
    for args in (["--check"], ["--check", "-v"]):
        result = node.clinit(*args)
        assert (result.returncode, result.stderr) == (0, warning), args
        assert result.stdout == f"{node.cltab}: ok, 22 entries in 7 groups\n"
    node.write_cltab(":::term_dealy:5\n:::outptu:out\n" + open(node.cltab).read())
    result = node.clinit("--check")
    assert result.returncode == 0
    assert "1: unknown setting 'term_dealy' ignored" in result.stderr
    assert "2: unknown setting 'outptu' ignored (did you mean output?)" in result.stderr
    node.start()
    assert "cltab:1: unknown setting 'term_dealy' ignored (did you mean term_delay?)" in node.log_text()
    assert node.clinit("scramjet", "1").stderr == ""
    assert "did you mean term_delay" in node.clinit("-v", "scramjet", "1").stderr


def test_check_refuses_a_fifo_without_blocking(node, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = node.clinit("--check", "-c", str(fifo), timeout=10)
    assert result.returncode == 6
    assert result.stderr == f"{fifo}: not a regular file\n"


def test_an_answer_sent_before_the_request_is_still_read(monkeypatch):
    """A daemon that refuses at accept answers and closes before the client has sent:
    the send fails (EPIPE), the answer is still there to read."""
    import _socket

    from cluster_init import client as client_module
    from cluster_init.client import Client
    from cluster_init.errors import PermissionDenied

    class Refused:
        def __init__(self, *args):
            self.answer = [b"error permission denied: uid 65534 may not use this clinit daemon\n", b""]

        def settimeout(self, _timeout):
            pass

        def connect(self, _path):
            pass

        def sendall(self, _data):
            raise BrokenPipeError(32, "Broken pipe")

        def recv(self, _size):
            return self.answer.pop(0)

        def close(self):
            pass

    monkeypatch.setattr(client_module, "_socket", type("S", (), {"socket": Refused, "AF_UNIX": _socket.AF_UNIX, "SOCK_STREAM": _socket.SOCK_STREAM}))
    with pytest.raises(PermissionDenied, match="uid 65534 may not use"):
        Client(cltab="/nonexistent", socket="/nonexistent.s").request("ping")


def test_check_warns_of_unknown_settings_beside_errors(node):
    node.write_cltab(":::kil_delay:3\n" + open(node.cltab).read() + "g:t:1:sometimes:true\n")
    result = node.clinit("--check")
    assert result.returncode == 6
    assert "unknown mode 'sometimes'" in result.stderr
    assert "unknown setting 'kil_delay' ignored (did you mean kill_delay?)" in result.stderr


def test_check_counts_in_words(node):
    node.write_cltab("g:t:1:wait:true\n")
    assert node.clinit("--check").stdout == f"{node.cltab}: ok, 1 entry in 1 group\n"


def test_verbose_says_when_there_is_no_clstat(node):
    node.start()
    os.unlink(node.clstat)
    result = node.clinit("-v")  # a reread that changes nothing writes no clstat
    assert f"warning: {node.clstat} does not exist" in result.stderr


def test_names_that_are_not_utf8_are_a_usage_error(node):
    result = subprocess.run(
        [sys.executable, CLINIT, "-c", node.cltab, b"g\xff".decode("utf-8", "surrogateescape"), "up"],
        env=node.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.stderr


def test_a_timeout_too_long_is_a_usage_error(node):
    result = node.clinit("-w", "-t", "1e10", "g", "1")
    assert result.returncode == 2 and "-t wants a number of seconds, from 0 to 1e+08" in result.stderr


def test_a_pidfile_naming_an_editor_of_a_clinit_file_is_stale(tmp_path):
    from cluster_init.background import is_clinit

    editor = subprocess.Popen(["sh", "-c", "sleep 30", "vi", "/etc/default/clinit"])
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "/usr/bin/clinit", "-d", "-b"])
    try:
        for process in (editor, daemon):  # a vfork'ed child has no command line for a moment
            wait_for(lambda process=process: open(f"/proc/{process.pid}/cmdline", "rb").read(), what="argv")
        assert not is_clinit(editor.pid)
        assert is_clinit(daemon.pid)
    finally:
        for process in (editor, daemon):
            process.kill()
            process.wait()
