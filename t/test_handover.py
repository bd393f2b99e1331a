"""clinit --reexec: the daemon re-executes itself in place, a real daemon and real children.

Each test starts a daemon in its own directory, brings groups up, hands
over, and checks that the daemon kept its pid and its children, that
every group and entry is as it was, that the children it kept are still
reaped (their exits with their statuses) and stopped properly later, and
that a handover that cannot happen leaves the daemon as it was and says
why.  Waits are on states, with deadlines.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import threading

import pytest

from cluster_init.client import lock_held
from cluster_init.protocol import LIST_FIELDS

from daemon_rig import CLINIT, LIB, alive, connect, marked_pids, settings, tagged, wait_for

SERVICE = """\
:::term_delay:1
:::kill_delay:1
g:prep:up:wait:true
g:svc:up:respawn:exec sleep 3600
g:bg:up:once:sleep 3601 & exec sleep 3602
g:chk:up:test:true
h:other:on:respawn:exec sleep 3603
"""


def rows(node, group=None):
    """``clinit -l`` through the protocol: {tag: {field: value}}."""
    answer = node.client().request("list", *([group] if group else []))
    return {fields[1]: dict(zip(LIST_FIELDS, fields)) for fields in (line.split("\t") for line in answer.lines)}


def steady(listing):
    """What a handover must not change in a listing: all but the time in state."""
    return {tag: {k: v for k, v in fields.items() if k != "since"} for tag, fields in listing.items()}


def ping(node):
    """``(pid, started)`` from the ping answer (its first line has kept its form)."""
    answer = node.client().request("ping")
    words = answer.message.split()
    assert words[:2] == ["clinit", words[1]] and words[2] == "pid" and len(words) == 4, answer.message
    (started,) = [line.split()[1] for line in answer.lines if line.startswith("started ")]
    return int(words[-1]), started


def reexec(node, *args, timeout=120):
    return node.clinit("--reexec", *args, timeout=timeout)


def read(path):
    with open(path, encoding="utf-8") as stream:
        return stream.read()


class Watcher(threading.Thread):
    """Reads clstat and probes the lock as fast as it can until stopped: what a
    monitor polling during the handover would have seen."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.seen = set()
        self.lock_free = 0
        self.reads = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.seen.add(read(self.node.clstat))
            except FileNotFoundError:
                self.seen.add(None)
            if lock_held(self.node.socket) is not True:
                self.lock_free += 1
            self.reads += 1

    def __enter__(self):
        self.start()
        wait_for(lambda: self.reads > 0, what="the watcher's first read")
        return self

    def __exit__(self, *_exc):
        self.stop.set()
        self.join(10)


def test_a_handover_keeps_the_daemon_its_children_and_every_group(node):
    node.write_cltab(settings(node) + SERVICE)
    node.start()
    assert node.settle("g", "up") == "DONE"
    assert node.settle("h", "on") == "DONE"
    daemon, started = ping(node)
    before = rows(node)
    # every process there, marks readable (a shell forks its "&" job after it was started)
    wait_for(lambda: [len(tagged(node, tag)) for tag in ("svc", "bg", "other")] == [1, 2, 1], what="children")
    children = sorted(marked_pids(node.mark, "CLINIT_GROUP=g") + marked_pids(node.mark, "CLINIT_GROUP=h"))
    clstat = read(node.clstat)
    assert clstat == "Cluster::Init::Group g up DONE\nCluster::Init::Group h on DONE\n"

    with Watcher(node) as watcher:
        result = reexec(node)
        wait_for(lambda: watcher.reads > 50, what="the watcher reading after the handover")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"handed over: clinit ") and f"runs on as pid {daemon}" in result.stdout
    assert watcher.seen == {clstat}, "clstat showed nothing but the settled state"
    assert watcher.lock_free == 0, "the lock was held throughout: clinit -S never said no daemon"

    assert node.daemon.poll() is None and node.daemon.pid == daemon
    pid, new_started = ping(node)
    assert pid == daemon and new_started != started, "the same process, a new image"
    assert steady(rows(node)) == steady(before), "every entry as it was: state, pid, starts, last exit"
    assert sorted(marked_pids(node.mark, "CLINIT_GROUP=g") + marked_pids(node.mark, "CLINIT_GROUP=h")) == children
    assert read(node.clstat) == clstat
    assert "took over from clinit" in node.log_text()
    assert _parent(int(before["svc"]["pid"])) == daemon, "its children are still its children"

    # the kept child's exit comes with its status, and the respawn goes on
    svc = int(before["svc"]["pid"])
    os.kill(svc, signal.SIGKILL)
    wait_for(lambda: rows(node, "g")["svc"]["pid"] not in ("-", str(svc)), what="svc respawned")
    wait_for(lambda: rows(node, "g")["svc"]["state"] == "DONE", what="svc up start_seconds")
    after = rows(node, "g")["svc"]
    assert (after["starts"], after["last_exit"]) == ("2", "SIGKILL")
    assert "result unknown" not in node.log_text()

    # a later level change stops what was kept, properly, and nothing is left twice
    result = node.clinit("-w", "g", "down")
    assert result.returncode == 0, result.stderr
    assert marked_pids(node.mark, "CLINIT_GROUP=g") == []
    assert {f["state"] for f in rows(node, "g").values()} == {"CONFIGURED"}
    assert "g:bg: pid %s exited (signal 2 (SIGINT))" % before["bg"]["pid"] in node.log_text()
    assert len(tagged(node, "other")) == 1, "the other group untouched, its process not duplicated"
    node.shutdown()
    assert marked_pids(node.mark, "CLINIT_GROUP=h") == []


def _parent(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        return int(stream.read().rsplit(")", 1)[1].split()[1])


def test_under_b_the_pid_file_stays_and_goes_at_exit(node):
    pidfile = os.path.join(node.dir, "pid")
    node.write_cltab(settings(node) + SERVICE)
    started = subprocess.run(
        [sys.executable, CLINIT, "-c", node.cltab, "-d", "-b", "-p", pidfile],
        cwd=node.dir, env=node.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert started.returncode == 0, started.stderr
    daemon = int(read(pidfile).split()[0])
    assert node.clinit("-w", "g", "up").stdout == "g up DONE\n"
    svc = wait_for(lambda: tagged(node, "svc"), what="svc")

    result = reexec(node)
    assert result.returncode == 0, result.stderr
    assert int(read(pidfile).split()[0]) == daemon, "the pid file names the same daemon"
    assert ping(node)[0] == daemon and tagged(node, "svc") == svc
    with open(f"/proc/{daemon}/cmdline", "rb") as stream:
        argv = stream.read().split(b"\0")
    assert b"-d" in argv and b"-b" in argv, "ps shows the command line it was started with"
    assert os.getcwd() != "/" and os.readlink(f"/proc/{daemon}/cwd") == "/", "still detached, in /"
    assert node.clinit("-w", "g", "up").stdout == "g up DONE\n"

    result = node.clinit("-k", "-w", "-t", "30")
    assert result.returncode == 0, result.stderr
    assert not alive(daemon) and not os.path.exists(pidfile), "the new image removed the pid file"
    assert lock_held(node.socket) is False


def test_a_handover_waits_until_the_groups_are_at_rest(node):
    go = os.path.join(node.dir, "go")
    node.write_cltab(settings(node) + SERVICE + f"slow:gate:up:wait:while [ ! -e {go} ]; do sleep 0.02; done\n")
    node.start()
    assert node.settle("g", "up") == "DONE"
    _daemon, started = ping(node)
    node.tell("slow", "up")

    result = reexec(node, "-t", "0.5")
    assert result.returncode == 1
    assert "not handed over within 0.5 s: group slow is STARTING" in result.stderr
    assert ping(node)[1] == started, "nothing happened"

    waiting = subprocess.Popen(
        [sys.executable, CLINIT, "-c", node.cltab, "--reexec", "-t", "30"],
        cwd=node.dir, env=node.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: "handover asked" in node.log_text().split("not handed over")[-1], what="the request")
        assert ping(node)[1] == started, "it waits while slow starts"
        with open(go, "w"):
            pass
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    assert "handed over" in out
    assert ping(node)[1] != started
    assert node.client().wait("slow", "up", timeout=5) == "DONE"
    assert node.client().wait("g", "up", timeout=5) == "DONE"


def test_a_client_in_the_middle_of_its_request_is_served_by_the_new_image(node):
    node.write_cltab(settings(node) + SERVICE)
    node.start()
    _daemon, started = ping(node)
    with connect(node) as halfway:
        halfway.sendall(b"pi")
        node.client().ping()  # answered after the daemon read "pi": it is in the old image's buffer
        assert reexec(node).returncode == 0
        halfway.sendall(b"ng\n")
        answer = halfway.recv(4096).decode()
    assert answer.startswith("ok clinit ") and started not in answer and "\nstarted " in answer


def test_no_daemon_is_exit_3_and_a_refused_cltab_is_kept_out(node):
    node.write_cltab(settings(node) + SERVICE)
    result = reexec(node)
    assert result.returncode == 3 and "no clinit daemon answers" in result.stderr
    node.start()
    assert node.settle("g", "up") == "DONE"
    _daemon, started = ping(node)
    node.write_cltab(settings(node) + SERVICE + "g:bad:up:sometimes:true\n")
    result = reexec(node)
    assert result.returncode == 6 and "sometimes" in result.stderr
    assert ping(node)[1] == started
    node.write_cltab(settings(node) + SERVICE)
    assert reexec(node).returncode == 0


def test_usage(node):
    for args in (["--reexec", "g", "up"], ["--reexec", "-w"], ["--reexec", "-v"], ["--reexec", "-k"]):
        result = node.clinit(*args)
        assert result.returncode == 2, (args, result)
        assert "Traceback" not in result.stderr


# ---- a handover that cannot happen --------------------------------------------------

def stand_in(node, python_code):
    """A clinit script in the node's directory that runs ``python_code`` first, and a
    python (a symlink to ours) to run it with: ``(python, script)``."""
    python = os.path.join(node.dir, "py")
    os.symlink(sys.executable, python)
    script = os.path.join(node.dir, "clinit-stand-in")
    with open(script, "w", encoding="utf-8") as stream:
        stream.write(
            "import os, sys\n"
            f"sys.path.insert(0, {LIB!r})\n"
            f"{python_code}\n"
            "from cluster_init.cli import main\n"
            "sys.exit(main())\n"
        )
    return python, script


def test_an_exec_that_fails_leaves_the_daemon_as_it_was(node):
    python, script = stand_in(node, (  # the probe passes, and takes the interpreter away (once)
        'here = os.path.dirname(sys.argv[0])\n'
        'if os.environ.get("CLINIT_REEXEC") == "probe" and os.path.exists(here + "/break"):\n'
        '    os.unlink(here + "/py"), os.unlink(here + "/break")'
    ))
    with open(os.path.join(node.dir, "break"), "w"):
        pass
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    assert node.settle("g", "up") == "DONE"
    daemon, started = ping(node)
    before = steady(rows(node))

    result = reexec(node)
    assert result.returncode == 1
    assert f"cannot re-execute {python}: No such file or directory" in result.stderr
    assert "goes on" in result.stderr
    assert ping(node) == (daemon, started), "the same image goes on"
    assert steady(rows(node)) == before and lock_held(node.socket) is True
    os.kill(daemon, signal.SIGUSR1)  # the signals blocked for the exec are unblocked again
    wait_for(lambda: "state dump" in node.log_text(), what="SIGUSR1 handled")
    os.kill(int(before["svc"]["pid"]), signal.SIGKILL)
    wait_for(lambda: rows(node, "g")["svc"]["starts"] == "2", what="svc respawned")

    os.symlink(sys.executable, python)  # the interpreter is back: the next one works
    assert reexec(node).returncode == 0
    assert ping(node)[0] == daemon and ping(node)[1] != started


def test_a_version_that_cannot_take_a_handover_is_not_executed(node):
    python, script = stand_in(node, 'os.environ.pop("CLINIT_REEXEC", None)')  # as clinit 0.4.0 was
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    _daemon, started = ping(node)
    result = reexec(node)
    assert result.returncode == 1 and "cannot take a handover (it has no --reexec)" in result.stderr
    assert ping(node)[1] == started


def test_a_broken_install_is_found_by_the_probe(node):
    python, script = stand_in(node, 'if os.environ.get("CLINIT_REEXEC") == "probe": raise ImportError("no module named daemon")')
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    _daemon, started = ping(node)
    result = reexec(node)
    assert result.returncode == 1 and "ImportError: no module named daemon" in result.stderr
    assert "Traceback" not in result.stderr, "one line, the reason: the whole output is in the log"
    assert "Traceback" in node.log_text()
    assert ping(node)[1] == started


def test_a_new_image_that_dies_is_reported_and_its_groups_adopted_next(node):
    python, script = stand_in(node, 'if os.environ.get("CLINIT_REEXEC", "").isdigit(): os._exit(1)')
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    assert node.settle("g", "up") == "DONE"
    kept = wait_for(lambda: tagged(node, "svc"), what="svc")
    result = reexec(node)
    assert result.returncode == 1
    assert "closed the connection during the handover without answering" in result.stderr
    node.daemon.wait(10)
    assert tagged(node, "svc") == kept, "its children live on"
    node.start()  # a new daemon (systemd's Restart=on-failure) adopts them
    assert node.client().wait("g", "up", timeout=10) == "DONE"
    assert rows(node, "g")["svc"]["pid"] == str(kept[0])
    assert "adopting g:svc" in node.log_text()


# ---- the worst moments --------------------------------------------------------------

GATED = (  # the new image waits for the file "go" before it starts: the exec's window, held open
    "import time\n"
    "here = os.path.dirname(sys.argv[0])\n"
    'if os.environ.get("CLINIT_REEXEC", "").isdigit():\n'
    '    while not os.path.exists(here + "/go"):\n'
    "        time.sleep(0.01)"
)


def gated_handover(node):
    """Start a handover through the gated stand-in; the --reexec client, once the old
    image has exec'ed (the log says so)."""
    client = subprocess.Popen(
        [sys.executable, CLINIT, "-c", node.cltab, "--reexec"],
        cwd=node.dir, env=node.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: "re-executes itself" in node.log_text(), what="the exec")
    return client


def test_a_signal_sent_during_the_exec_waits_for_the_new_image(node):
    python, script = stand_in(node, GATED)
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    assert node.settle("g", "up") == "DONE"
    client = gated_handover(node)
    try:
        node.daemon.send_signal(signal.SIGTERM)  # the default action would kill it now
        with open(os.path.join(node.dir, "go"), "w"):
            pass
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0 and "handed over" in out, err
    assert node.daemon.wait(30) == 0, "not killed: it halted every group, then exited"
    assert "shutting down (signal SIGTERM)" in node.log_text()
    assert marked_pids(node.mark, "CLINIT_GROUP=g") == []


def test_a_client_that_comes_during_the_exec_is_answered_by_the_new_image(node):
    python, script = stand_in(node, GATED)
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    _daemon, started = ping(node)
    client = gated_handover(node)
    try:
        with connect(node) as meanwhile:  # the socket is there, and listening
            meanwhile.sendall(b"status\n")
            with open(os.path.join(node.dir, "go"), "w"):
                pass
            answer = meanwhile.recv(4096).decode()
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert answer.startswith("ok ") and client.returncode == 0, (answer, err)
    assert ping(node)[1] != started


def test_clinit_reexec_is_for_the_handover_only(node):
    """A CLINIT_REEXEC that is not our own handover's is ignored; children never see it."""
    node.write_cltab(settings(node) + SERVICE)
    env = dict(node.env(), CLINIT_REEXEC="0")  # stdin: never read
    with open(node.stderr_path, "w") as stderr:
        node.daemon = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", node.cltab], cwd=node.dir, env=env,
            stdin=subprocess.PIPE, stdout=stderr, stderr=stderr,
        )
    wait_for(lambda: node.client().alive(), what="the daemon")
    assert "descriptor 0 is not a handover record; starting afresh" in node.daemon_stderr()
    assert node.settle("g", "up") == "DONE"
    assert reexec(node).returncode == 0
    os.kill(tagged(node, "svc")[0], signal.SIGKILL)
    wait_for(lambda: rows(node, "g")["svc"]["starts"] == "2", what="svc respawned")
    for tag in ("svc", "bg"):
        with open(f"/proc/{tagged(node, tag)[0]}/environ", "rb") as stream:
            assert b"CLINIT_REEXEC=" not in stream.read()


def test_handovers_leak_no_descriptor(node):
    node.write_cltab(settings(node) + SERVICE)
    node.start()
    assert node.settle("g", "up") == "DONE"
    fds = lambda: sorted(os.listdir(f"/proc/{node.daemon.pid}/fd"))  # noqa: E731
    reexec(node)
    first = fds()
    for _ in range(3):
        assert reexec(node).returncode == 0
    assert fds() == first
    for fd in first:
        flags = open(f"/proc/{node.daemon.pid}/fdinfo/{fd}").read().split("flags:")[1].split()[0]
        assert int(fd) <= 2 or int(flags, 8) & 0o2000000, f"descriptor {fd} is not close-on-exec"


def test_systemd_hears_reloading_then_ready(node):
    notify = os.path.join(node.dir, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify)
    listener.settimeout(30)
    node.write_cltab(settings(node) + SERVICE)
    with open(node.stderr_path, "w") as stderr:
        node.daemon = subprocess.Popen(
            [sys.executable, CLINIT, "-d", "-c", node.cltab], cwd=node.dir,
            env=dict(node.env(), NOTIFY_SOCKET=notify), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
        )
    try:
        assert listener.recv(4096).startswith(b"READY=1\nMAINPID=%d" % node.daemon.pid)
        assert reexec(node).returncode == 0
        assert listener.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        assert listener.recv(4096).startswith(b"READY=1\nMAINPID=%d" % node.daemon.pid)
    finally:
        listener.close()


def test_two_clients_asking_at_once_are_both_answered(node):
    go = os.path.join(node.dir, "go")
    node.write_cltab(settings(node) + SERVICE + f"slow:gate:up:wait:while [ ! -e {go} ]; do sleep 0.02; done\n")
    node.start()
    node.tell("slow", "up")
    clients = [
        subprocess.Popen([sys.executable, CLINIT, "-c", node.cltab, "--reexec"], cwd=node.dir, env=node.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        wait_for(lambda: node.log_text().count("handover asked") == 2, what="both requests")
        with open(go, "w"):
            pass
        results = [client.communicate(timeout=60) for client in clients]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
    assert [client.returncode for client in clients] == [0, 0], results
    assert node.log_text().count("re-executes itself") == 1, "one exec for both"


def test_processes_adopted_after_a_crash_are_still_watched_after_a_handover(node):
    node.write_cltab(settings(node) + SERVICE)
    node.start()
    assert node.settle("g", "up") == "DONE"
    node.daemon.kill()  # SIGKILL: its children live on, with its marks
    node.daemon.wait(10)
    node.start()  # adopts them: not its children, watched through pidfds
    svc = tagged(node, "svc")[0]
    assert rows(node, "g")["svc"]["note"] == "adopted"
    assert reexec(node).returncode == 0
    assert rows(node, "g")["svc"]["note"] == "adopted" and rows(node, "g")["svc"]["pid"] == str(svc)
    os.kill(svc, signal.SIGKILL)
    wait_for(lambda: rows(node, "g")["svc"]["pid"] not in ("-", str(svc)), what="svc respawned")
    assert "g:svc: pid %d exited (result unknown after adoption)" % svc in node.log_text()


def test_children_still_get_the_open_files_limit_the_daemon_was_started_with(node):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip(f"the hard open files limit is only {hard}")
    node.write_cltab(settings(node) + SERVICE)
    node.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    assert node.settle("g", "up") == "DONE"
    assert reexec(node).returncode == 0
    assert _soft_limit(node.daemon.pid) == hard, "raised again by the new image"
    os.kill(tagged(node, "svc")[0], signal.SIGKILL)
    wait_for(lambda: rows(node, "g")["svc"]["starts"] == "2", what="svc respawned")
    respawned = wait_for(lambda: tagged(node, "svc"), what="the new svc")[0]
    assert _soft_limit(respawned) == 256, "not the raised one: the first image's original"


def _soft_limit(pid):
    with open(f"/proc/{pid}/limits", encoding="ascii") as stream:
        line = next(line for line in stream if line.startswith("Max open files"))
    return int(line.split()[3])


def test_an_old_daemon_that_knows_no_reexec_is_said_so(node):
    """What the package's first upgrade meets: a clinit 0.4.0 daemon (here, a socket
    answering as it would)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(node.socket)
    server.listen(4)
    node.write_cltab(settings(node) + SERVICE)

    def answer_two():
        for reply in (b"ok clinit 0.4.0 pid 1\n", b"error unknown request 'reexec' (known: tell, ...)\n"):
            conn, _ = server.accept()
            conn.recv(4096)
            conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=answer_two, daemon=True)
    thread.start()
    try:
        result = reexec(node)
    finally:
        thread.join(10)
        server.close()
    assert result.returncode == 1
    assert "cannot hand over: it predates --reexec" in result.stderr and "0.4.0" in result.stderr


def test_an_entry_stopped_by_hand_stays_stopped_across_a_handover(node):
    node.write_cltab(settings(node) + SERVICE)
    node.start()
    assert node.settle("g", "up") == "DONE"
    result = node.clinit("--stop", "g", "svc")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: rows(node, "g")["svc"]["state"] == "CONFIGURED", what="svc stopped")
    assert reexec(node).returncode == 0
    svc = rows(node, "g")["svc"]
    assert (svc["state"], svc["pid"], svc["note"]) == ("CONFIGURED", "-", "stopped by hand")
    assert tagged(node, "svc") == [] and node.clinit("-S", "g", "up").returncode == 0
    assert node.clinit("--start", "g", "svc").returncode == 0
    wait_for(lambda: tagged(node, "svc"), what="svc started by hand")


def test_boot_lines_are_not_told_again_at_a_handover(node):
    node.write_cltab(settings(node) + ":::boot:g:up\n" + SERVICE)
    node.start()
    assert node.client().wait("g", "up", timeout=20) == "DONE", "told at the start"
    assert node.clinit("-w", "g", "down").returncode == 0
    assert reexec(node).returncode == 0
    assert node.client().wait("g", "down", timeout=5) == "DONE", "still where it was moved to"
    assert tagged(node, "svc") == [] and "boot: telling g" not in node.log_text().split("took over")[-1]


def test_a_cltab_with_many_warnings_is_handed_over(node):
    """The probe's last line decides, however much --check says before it."""
    noise = "".join(f":::no_such_setting_{i}:x\n" for i in range(3000))
    node.write_cltab(settings(node) + noise + SERVICE)
    node.start()
    assert len(node.clinit("--check").stderr) > 100000
    result = reexec(node)
    assert result.returncode == 0, result.stderr


def test_a_bad_request_is_answered_and_changes_nothing(node):
    from daemon_rig import ask

    node.write_cltab(settings(node) + SERVICE)
    node.start()
    _daemon, started = ping(node)
    for line in ("reexec soon", "reexec 1e9", "reexec -1", "reexec 1 2"):
        assert ask(node, line).startswith("error "), line
    assert ping(node)[1] == started


def test_an_adopted_process_that_dies_during_the_exec_is_respawned(node):
    python, script = stand_in(node, GATED)
    node.write_cltab(settings(node) + SERVICE)
    node.start([python, script, "-d", "-c", node.cltab])
    assert node.settle("g", "up") == "DONE"
    node.daemon.kill()
    node.daemon.wait(10)
    node.start([python, script, "-d", "-c", node.cltab])  # adopts: pidfds, not children
    svc = wait_for(lambda: tagged(node, "svc"), what="svc")[0]
    assert rows(node, "g")["svc"]["note"] == "adopted"
    client = gated_handover(node)
    try:
        os.kill(svc, signal.SIGKILL)  # while the new image starts: only its pidfd tells
        wait_for(lambda: not alive(svc), what="svc gone")
        with open(os.path.join(node.dir, "go"), "w"):
            pass
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, err
    wait_for(lambda: rows(node, "g")["svc"]["pid"] not in ("-", str(svc)), what="svc respawned")
    wait_for(lambda: rows(node, "g")["svc"]["state"] == "DONE", what="svc up start_seconds")
