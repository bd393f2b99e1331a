"""The command against what it may meet: FIFOs where files should be, waits of
any length, closed standard descriptors, Ctrl-C, and a daemon killed with SIGKILL.

Issues 17 (items 3, 4 and 8, the command's side) and 18 (the client's items).
Every test runs the real command against a real daemon, or the functions
that format and parse what goes between them; a FIFO without a writer is
what would hang a reader, so each read of one runs under a deadline.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from cluster_init import status as status_module
from cluster_init.cli_args import quick_parse, usage_problem
from cluster_init.client import Client, lock_held
from cluster_init.protocol import MAX_SECONDS, ProtocolError, format_seconds, parse_request
from daemon_rig import CLINIT, stays, wait_for
from realproc import alive


def settings(node, **extra):
    lines = [f":::socket:{node.socket}", f":::clstat:{node.clstat}", f":::log:{node.log}",
             ":::term_delay:1", ":::kill_delay:1"]
    lines += [f":::{name}:{value}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def deadline(seconds=5):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""
    def expired(_signum, _frame):
        raise AssertionError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fds_of(pid):
    """{descriptor: what it points to} of a live process."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return found


def wchan(pid):
    try:
        with open(f"/proc/{pid}/wchan", encoding="ascii") as stream:
            return stream.read()
    except OSError:
        return ""


def on_socket(pid):
    """Whether ``pid`` sleeps waiting for its socket (in poll, as a socket with a timeout does)."""
    return any(word in wchan(pid) for word in ("poll", "unix_stream_read"))


def read_pid(path):
    return int(wait_for(lambda: os.path.exists(path) and open(path).read().strip(), what=path))


# ---------------------------------------------------------------- FIFOs (issue 17, item 3)

def test_status_reader_refuses_a_fifo_at_once(tmp_path):
    fifo = str(tmp_path / "clstat")
    os.mkfifo(fifo)
    with deadline(), pytest.raises(OSError, match="not a regular file"):
        status_module.read_with_mtime(fifo)  # the daemon reads its predecessor's clstat with it
    with deadline(), pytest.raises(OSError, match="not a regular file"):
        Client(cltab="/nonexistent", socket="/nonexistent.s", clstat=fifo).status()


def test_status_reader_refuses_a_clstat_without_bound(tmp_path, monkeypatch):
    big = tmp_path / "clstat"
    big.write_bytes(b"Cluster::Init::Group g 1 DONE\n" * 10)
    monkeypatch.setattr(status_module, "MAX_CLSTAT_BYTES", 100)
    with pytest.raises(OSError, match="larger than 100 bytes"):
        status_module.read(str(big))
    monkeypatch.setattr(status_module, "MAX_CLSTAT_BYTES", 300)
    assert status_module.read(str(big)) == [("g", "1", "DONE")] * 10


def test_status_of_a_fifo_at_the_clstat_path_is_4_at_once(node):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    os.mkfifo(node.clstat)
    result = node.clinit("-S", timeout=10)
    assert result.returncode == 4
    assert result.stderr == f"clinit: cannot read {node.clstat}: not a regular file\n"
    result = node.clinit("-S", "--clstat", node.clstat, "g", timeout=10)
    assert result.returncode == 4 and "not a regular file" in result.stderr


def test_verbose_with_a_fifo_at_the_clstat_path_says_so(node):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    node.start()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(node.clstat)
    os.mkfifo(node.clstat)
    result = node.clinit("-v", timeout=10)  # a reread that changes nothing leaves clstat alone
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert f"clinit: cannot read {node.clstat}: not a regular file\n" in result.stderr


def test_the_lock_probe_refuses_a_fifo(tmp_path):
    socket_path = str(tmp_path / "clinit.s")
    os.mkfifo(socket_path + ".lock")
    with deadline():
        assert lock_held(socket_path) is None, "cannot be told: not a lock file"
    assert lock_held(str(tmp_path / "other.s")) is False, "no lock file: no daemon"


# ---------------------------------------------------------------- -t of any length (issue 17, item 4)

@pytest.mark.parametrize(
    "seconds, sent",
    [(0, "0"), (-0.0, "0"), (0.00001, "0.00001"), (0.5, "0.5"), (2.5, "2.5"), (300, "300"),
     (1000000, "1000000"), (1e6 + 0.25, "1000000.25"), (MAX_SECONDS, "100000000")],
)
def test_wait_seconds_reach_the_daemon_in_a_form_it_takes(seconds, sent):
    assert format_seconds(seconds) == sent
    request = parse_request(f"wait g 1 {format_seconds(seconds)}".encode())
    assert abs(float(request.args[2]) - seconds) < 1e-6


@pytest.mark.parametrize("seconds", [-1, MAX_SECONDS * 1.0001, float("inf"), float("nan")])
def test_wait_seconds_out_of_range_are_refused_before_sending(seconds):
    with pytest.raises(ValueError):
        format_seconds(seconds)


@pytest.mark.parametrize("text", ["1e+06", "1e8", "-1", "100000001", "0x10", "inf", "", "1.2.3"])
def test_the_daemon_refuses_other_forms(text):
    with pytest.raises(ProtocolError):
        parse_request(f"wait g 1 {text}".encode())


@pytest.mark.parametrize("text", ["1000000", "1e8", "1e6", "0.00001", "0", "100000000"])
def test_every_timeout_the_command_accepts_can_be_sent(text):
    args = quick_parse(["-w", "-t", text, "g", "1"])
    assert usage_problem(args) is None
    parse_request(f"wait g 1 {format_seconds(args.timeout)}".encode())


def test_long_and_tiny_timeouts_with_a_real_daemon(node):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    node.start()
    for text in ("1000000", "1e8", "1e6", "100000000"):
        node.tell("g", "2")  # away and back: each -w waits for a move
        result = node.clinit("-w", "-t", text, "g", "1", timeout=30)
        assert (result.returncode, result.stdout, result.stderr) == (0, "g 1 DONE\n", ""), text
    assert node.client().wait("g", "1", timeout=1e6) == "DONE"
    node.tell("g", "2")
    tiny = node.clinit("-w", "-t", "0.00001", "g", "1", timeout=30)  # taken, and over at once (or settled)
    assert (tiny.returncode, tiny.stderr) in ((0, ""), (124, "clinit: g did not settle at level 1 within 0.00001 s\n"))


# ---------------------------------------------------------------- closed 0, 1 and 2 (issue 17, item 8)

CLOSED = 'exec "$@" <&- >&- 2>&-'


def test_a_daemon_started_with_closed_descriptors_keeps_its_own_off_0_1_2(node):
    pidfile = os.path.join(node.dir, "svc.pid")
    node.write_cltab(settings(node) + f"g:svc:1:respawn:echo $$ > {pidfile}; exec sleep 1000\n")
    daemon = node.start(["sh", "-c", CLOSED, "sh", sys.executable, CLINIT, "-d", "-c", node.cltab])
    fds = fds_of(daemon.pid)
    assert all(fds[fd] == "/dev/null" for fd in (0, 1, 2)), fds
    lock = next(fd for fd, target in fds.items() if target == node.socket + ".lock")
    epoll = [fd for fd, target in fds.items() if "eventpoll" in target]
    assert lock > 2 and epoll and min(epoll) > 2, fds
    node.tell("g", "1")
    child = read_pid(pidfile)
    child_fds = wait_for(lambda: fds_of(child) if "sleep" in open(f"/proc/{child}/cmdline").read() else None,
                         what="the child's exec")
    assert set(child_fds) == {0, 1, 2}, f"a descriptor of the daemon leaked into its child: {child_fds}"
    daemon_only = {target for fd, target in fds.items() if fd > 2}
    assert not daemon_only & set(child_fds.values()), child_fds


def test_a_detached_daemon_started_with_closed_descriptors(node):
    pidfile = os.path.join(node.dir, "clinit.pid")
    svc = os.path.join(node.dir, "svc.pid")
    node.write_cltab(settings(node, pidfile=pidfile) + f"g:svc:1:respawn:echo $$ > {svc}; exec sleep 1000\n")
    started = subprocess.run(["sh", "-c", CLOSED, "sh", sys.executable, CLINIT, "-c", node.cltab, "-d", "-b"],
                             env=node.env(), cwd=node.dir, timeout=60)
    assert started.returncode == 0
    daemon = read_pid(pidfile)
    try:
        fds = fds_of(daemon)
        assert all(fds[fd] == "/dev/null" for fd in (0, 1, 2)), fds
        node.tell("g", "1")
        child = read_pid(svc)
        child_fds = wait_for(lambda: fds_of(child) if "sleep" in open(f"/proc/{child}/cmdline").read() else None,
                             what="the child's exec")
        assert set(child_fds) == {0, 1, 2} and child_fds[0] == "/dev/null", child_fds
        assert not {target for fd, target in fds.items() if fd > 2 and target != node.log} & set(child_fds.values())
    finally:
        assert node.clinit("-k", "-w", "-t", "30").returncode == 0


@pytest.mark.parametrize(
    "args, code",
    [
        (["g", "1"], 0), (["-w", "g", "1"], 0), (["-v"], 0), (["-S"], 0), (["-l"], 0), (["-r", "g", "t"], 0),
        (["--check"], 0), (["-h"], 0), (["--version"], 0), (["nosuch", "1"], 1), (["-w", "-t", "x"], 2),
    ],
)
def test_no_form_of_the_command_minds_closed_descriptors(node, args, code):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    node.start()
    node.settle("g", "1")
    command = [sys.executable, CLINIT, "-c", node.cltab, *args]
    closed_all = subprocess.run(["sh", "-c", CLOSED, "sh", *command], env=node.env(), timeout=30)
    assert closed_all.returncode == code, args
    # 0 and 1 closed, stderr kept: what it says there is no traceback
    kept = subprocess.run(["sh", "-c", 'exec "$@" <&- >&-', "sh", *command], env=node.env(),
                          stderr=subprocess.PIPE, text=True, timeout=30)
    assert kept.returncode == code and "Traceback" not in kept.stderr, kept.stderr


def test_kill_and_wait_with_closed_descriptors(node):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    node.start()
    result = subprocess.run(["sh", "-c", CLOSED, "sh", sys.executable, CLINIT, "-c", node.cltab, "-k", "-w"],
                            env=node.env(), timeout=30)
    assert result.returncode == 0
    assert node.daemon.wait(10) == 0


# ---------------------------------------------------------------- Ctrl-C (issue 18)

def interrupted(process):
    """SIGINT ``process`` (only it, as a terminal's Ctrl-C would reach it); (code, stdout, stderr)."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    return process.returncode, out, err


def test_ctrl_c_during_a_wait_is_one_line_and_130(node):
    napping = os.path.join(node.dir, "nap.pid")
    node.write_cltab(settings(node) + f"s:nap:1:wait:echo $$ > {napping}; exec sleep 1000\n")
    node.start()
    waiting = subprocess.Popen([sys.executable, CLINIT, "-c", node.cltab, "-w", "s", "1"], env=node.env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nap = read_pid(napping)
        wait_for(lambda: on_socket(waiting.pid), what="the client to wait on its socket")
        stays(lambda: on_socket(waiting.pid), 0.3, "the client's wait")
        code, out, err = interrupted(waiting)
    finally:
        waiting.kill() if waiting.poll() is None else None
    assert (code, out) == (130, "")
    assert err == "clinit: interrupted while waiting for s to settle at level 1; the daemon goes on moving it\n"
    assert alive(nap) and node.status(group="s") == "1 STARTING\n", "the daemon goes on"


def test_ctrl_c_during_kill_and_wait_is_one_line_and_130(node):
    stubborn = os.path.join(node.dir, "stub.pid")
    node.write_cltab(settings(node).replace(":::term_delay:1", ":::term_delay:60")
                     + f"g:stub:1:respawn:trap '' INT TERM; echo $$ > {stubborn}; while :; do sleep 0.2; done\n")
    node.start()
    node.tell("g", "1")
    stub = read_pid(stubborn)
    waiting = subprocess.Popen([sys.executable, CLINIT, "-c", node.cltab, "-k", "-w"], env=node.env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "shutting down" in node.log_text(), what="the shutdown")
        wait_for(lambda: "nanosleep" in wchan(waiting.pid), what="the client to poll the daemon's lock")
        code, out, err = interrupted(waiting)
    finally:
        waiting.kill() if waiting.poll() is None else None
    assert (code, out) == (130, "")
    assert err == ("clinit: interrupted while waiting for the daemon to exit; "
                   "it goes on halting its groups and exits when they are down\n")
    assert node.daemon.poll() is None and alive(stub), "the daemon goes on halting"
    node.daemon.kill()  # rather than wait out its term_delay: cleanup kills the stub
    node.daemon.wait(10)


# ---------------------------------------------------------------- -S after a crash (issue 18)

def test_status_knows_at_once_that_no_daemon_holds_the_clstat(node, tmp_path):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    node.start()
    assert node.settle("g", "1") == "DONE"
    assert node.clinit("-S", "g", "1").returncode == 0, "a live daemon holds it"
    node.daemon.kill()  # kill -9: clstat stays, fresh, with nobody to keep it true
    node.daemon.wait(10)
    result = node.clinit("-S", "g", "1")
    assert (result.returncode, result.stdout) == (4, ""), "a dead daemon's DONE is not on stdout"
    assert result.stderr == (f"clinit: {node.clstat} is left from a daemon that is gone: "
                             f"no daemon holds {node.socket}.lock\n"
                             "clinit: last recorded: g 1 DONE\n")
    other = node.clinit("-S", "--clstat", node.clstat, "g", "1")
    assert other.returncode == 0, "another node's clstat: only the staleness rule"
    old = time.time() - 200
    os.utime(node.clstat, (old, old))
    assert node.clinit("-S", "--clstat", node.clstat, "g", "1").returncode == 4


# ---------------------------------------------------------------- the shell readers (issue 17, item 3)

def test_the_init_script_refuses_a_fifo_for_a_pid_file(node):
    from test_contrib_init import Init, cltab_text, web_entry

    node.write_cltab(cltab_text(node.dir, [web_entry(node.dir)]))
    init = Init(node)
    os.mkfifo(init.pidfile)
    run = lambda *args: subprocess.run(  # noqa: E731
        [init_script(), *args], env=init.env, cwd=node.dir, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=20)
    status = run("status")
    assert status.returncode == 1 and "pid file" in status.stdout, status
    started = run("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert init.pid() and alive(init.pid())
    assert run("stop").returncode == 0


def test_the_init_script_refuses_a_fifo_for_a_cltab(node):
    from test_contrib_init import Init

    init = Init(node, PIDFILE=os.path.join(node.dir, "clinit.pid"))
    os.unlink(node.cltab)
    os.mkfifo(node.cltab)
    for action, code in (("status", 3), ("start", 6)):
        result = subprocess.run([init_script(), action], env=init.env, cwd=node.dir, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == code, (action, result)


def init_script():
    from test_contrib_init import SCRIPT

    return SCRIPT


@pytest.fixture
def agent(tmp_path):
    from ocf_rig import AgentRig

    rig = AgentRig(tmp_path)
    yield rig
    rig.cleanup()


def test_the_ocf_monitor_never_blocks_on_a_fifo_at_the_clstat_path(agent):
    os.mkfifo(agent.node.clstat)
    done = agent.agent("monitor", run_timeout=20)
    assert done.returncode == 7, done.stderr  # no daemon, nothing of the group runs
    os.unlink(agent.node.clstat)
    assert agent.agent("start").returncode == 0
    os.unlink(agent.node.clstat)
    os.mkfifo(agent.node.clstat)
    done = agent.agent("monitor", run_timeout=20)
    assert done.returncode == 1, done.stderr
    assert f"clstat {agent.node.clstat} is not a regular file" in done.stderr
    assert agent.agent("stop", run_timeout=30).returncode == 0
