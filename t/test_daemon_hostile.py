"""A root daemon against what others plant, forge or leave open (issue 17, the daemon's side).

Each test is one of the issue's reproductions, with a real daemon and real
children in a per-test directory: a crash that leaves a stale level mark,
forged marks, a planted clstat, FIFOs where files should be, symlinks
swapped in on the way, descriptors the daemon was started with.  Tests
that act as another user (user nobody) need root and skip otherwise.
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from as_user import nobody, run_as
from cluster_init import procfs, safepath
from cluster_init.sysapi import RealSystem
from daemon_rig import CLINIT, LIB, settings, tagged, wait_for
from realproc import alive, environ_of

DEADLINE = 20  # seconds: what blocks on a FIFO would block for good


def kill_daemon(node):
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)


# ---------------------------------------------------------------- item 7: a stale level mark

def test_an_entry_kept_across_a_tell_is_adopted_at_the_level_clstat_recorded(node):
    node.write_cltab(settings(node) + "s:svc:12:respawn:exec sleep 1000\n")
    node.start()
    assert node.settle("s", "1") == "DONE"
    (svc,) = wait_for(lambda: tagged(node, "svc"), what="svc")
    assert node.settle("s", "2") == "DONE"
    assert tagged(node, "svc") == [svc], "svc runs on, its mark still says level 1"
    assert open(node.clstat).read() == "Cluster::Init::Group s 2 DONE\n"
    kill_daemon(node)
    node.start()
    wait_for(lambda: "group s restored at level" in node.log_text(), what="the restore")
    assert "group s restored at level 2 DONE" in node.log_text()
    assert node.status(group="s") == "2 DONE\n"
    assert alive(svc) and tagged(node, "svc") == [svc], "adopted, not stopped"
    assert node.clinit("-w", "s", "2").stdout == "s 2 DONE\n"


# ---------------------------------------------------------------- item 6: forged marks

STRANGER = r"""
trap 'echo "signalled INT $$"' INT
trap 'echo "signalled TERM $$"' TERM
echo started
while :; do
    setsid sh -c 'trap "echo signalled INT \$\$" INT; trap "echo signalled TERM \$\$" TERM; sleep 0.3 & wait' &
    child=$!
    wait $child
    code=$?
    [ $code -gt 128 ] && echo "killed $child ($code)"
done
"""


def stranger(node, group, tag, uid, gid):
    """Another user's shell that keeps starting processes, each in a session of its own,
    all with the marks of ``group:tag``; what it says of signals it got is on its stdout."""
    env = dict(os.environ, CLINIT_DAEMON=node.socket, CLINIT_GROUP=group, CLINIT_TAG=tag, CLINIT_LEVEL="1",
               **dict([node.mark.split("=", 1)]))
    process = subprocess.Popen(["sh", "-c", STRANGER], env=env, user=uid, group=gid, extra_groups=[],
                               start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               text=True, cwd="/")
    assert process.stdout.readline() == "started\n"
    return process


def test_a_level_change_completes_and_never_signals_strangers_with_our_marks(node):
    uid, gid = nobody()
    node.write_cltab(settings(node, ":::kill_mode:all", ":::term_delay:0.5", ":::kill_delay:0.5")
                     + "g:svc:1:respawn:exec sleep 1000\ng:after:2:wait:true\n")
    node.start()
    assert node.settle("g", "1") == "DONE"
    (svc,) = wait_for(lambda: tagged(node, "svc"), what="svc")
    forger = stranger(node, "g", "svc", uid, gid)
    try:
        wait_for(lambda: len(tagged(node, "svc")) >= 3, what="the stranger's processes")
        assert node.settle("g", "2", timeout=30) == "DONE", "the level change completes"
        assert not alive(svc), "ours was stopped"
        assert forger.poll() is None, "the stranger was not killed"
    finally:
        forger.kill()
        said = forger.communicate(timeout=10)[0]
    assert "signalled" not in said and "killed" not in said, said
    assert "marked pids" not in node.log_text()


def test_a_process_of_ours_that_dropped_privileges_is_still_stopped(node):
    """It descends from the daemon: its marks count whatever its uid."""
    uid, gid = nobody()
    node.write_cltab(settings(node, ":::kill_mode:all", ":::term_delay:0.5", ":::kill_delay:0.5")
                     + f"g:svc:1:once:setpriv --reuid={uid} --regid={gid} --clear-groups setsid sleep 1000 &"
                       " exec sleep 1001\n"
                     + "g:after:2:wait:true\n")
    node.start()
    assert node.settle("g", "1") == "DONE"
    dropped = wait_for(lambda: [pid for pid in tagged(node, "svc") if os.stat(f"/proc/{pid}").st_uid == uid],
                       what="the process that dropped privileges")
    assert node.settle("g", "2", timeout=30) == "DONE"
    wait_for(lambda: not any(alive(pid) for pid in dropped), what="it to be stopped")


def test_descent_is_read_up_the_chain_of_parents():
    assert procfs.descends_from(os.getpid(), os.getppid()), "read from /proc"
    assert not procfs.descends_from(os.getppid(), os.getpid())
    assert not procfs.descends_from(os.getpid(), 999999999), "the chain ends at init"


def test_the_real_seam_takes_only_what_descends_from_us_or_runs_as_our_uid():
    uid, gid = nobody()
    system = RealSystem()
    daemon_id = f"/run/{uuid.uuid4().hex}.s"
    marks = {"CLINIT_DAEMON": daemon_id, "CLINIT_GROUP": "g", "CLINIT_TAG": "t"}
    child = subprocess.Popen(["sleep", "30"], env=dict(os.environ, **marks), user=uid, group=gid,
                             extra_groups=[], start_new_session=True)
    said = subprocess.run(["setsid", "-f", "sh", "-c", "echo $$; exec sleep 30 >/dev/null"], check=True,
                          env=dict(os.environ, **marks), user=uid, group=gid, extra_groups=[],
                          stdout=subprocess.PIPE, timeout=10)
    orphan = int(said.stdout)  # its parent exited: handed to init (or a subreaper), not to us
    try:
        for pid in (child.pid, orphan):
            wait_for(lambda pid=pid: environ_of(pid), what="the exec")
        assert procfs.parent(orphan) != os.getpid()
        assert system.marked(daemon_id, "g", "t") == [child.pid], "our child, whatever its uid"
        assert system.group_is_ours(child.pid, daemon_id, "g", "t")
        assert not system.group_is_ours(orphan, daemon_id, "g", "t"), "another uid's, not descending from us"
        assert sorted(system.marked(daemon_id, "g", "t", uid=uid)) == sorted([child.pid, orphan]), "the entry's user"
        assert system.find_marked(daemon_id) == [], "after a crash: only our own uid"
        assert {f.pid for f in system.find_marked(daemon_id, uids={uid})} == {child.pid, orphan}
    finally:
        child.kill()
        child.wait()
        os.kill(orphan, signal.SIGKILL)


# ---------------------------------------------------------------- item 3: FIFOs where files should be

@pytest.fixture
def public():
    """A directory every user can reach (tmp_path is root's 0700), owned by us, 0755."""
    where = Path(tempfile.mkdtemp(prefix="clinit-hostile-"))
    os.chmod(where, 0o755)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def daemon_command(node, *args, timeout=DEADLINE):
    """``clinit -d ARGS`` that must end (it cannot start): the CompletedProcess.  A daemon
    that hangs fails the test at the deadline (and is killed)."""
    return subprocess.run([sys.executable, CLINIT, "-c", node.cltab, "-d", *args], cwd=node.dir, env=node.env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def refused(result, *needles):
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize("background", [False, True], ids=["d", "d-b"])
def test_a_fifo_at_the_clstat_path_refuses_the_start_at_once(node, background):
    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab(settings(node, f":::pidfile:{pidfile}") + "g:t:1:wait:true\n")
    os.mkfifo(node.clstat)
    result = daemon_command(node, *(["-b"] if background else []))
    refused(result, f"clinit: the clstat {node.clstat} is a FIFO, not a regular file")
    assert stat.S_ISFIFO(os.lstat(node.clstat).st_mode), "left as it was"
    assert not os.path.exists(node.socket) and not os.path.exists(pidfile)


def test_a_fifo_at_the_pid_file_path_refuses_a_detached_start_at_once(node):
    pidfile = os.path.join(node.dir, "clinit.pid")
    node.write_cltab(settings(node, f":::pidfile:{pidfile}") + "g:t:1:wait:true\n")
    os.mkfifo(pidfile)
    refused(daemon_command(node, "-b"), f"clinit: the pidfile {pidfile} is a FIFO, not a regular file")
    assert not os.path.exists(node.socket)


def test_a_fifo_at_the_lock_path_refuses_the_start(node):
    node.write_cltab(settings(node) + "g:t:1:wait:true\n")
    os.mkfifo(node.socket + ".lock")
    refused(daemon_command(node), f"{node.socket}.lock is a FIFO, not a regular file")


# ---------------------------------------------------------------- item 2: a planted clstat

PLANTED = (
    "web:mount:run:wait:echo mount >> {ran}\n"
    "web:check:run:test:echo check >> {ran}\n"
    "web:app:run:once:echo app >> {ran}\n"
)


def test_a_clstat_another_user_planted_is_ignored(node, public):
    uid, gid = nobody()
    shared = public / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    clstat = shared / "clstat"
    ran = os.path.join(node.dir, "ran")
    node.write_cltab(settings(node).replace(node.clstat, str(clstat)) + PLANTED.format(ran=ran))
    code, _out, err = run_as(uid, gid, lambda: clstat.write_text("Cluster::Init::Group web run DONE\n") and 0)
    assert code == 0, err
    node.start()
    assert f"not restoring from {clstat}: owned by uid {uid}, not root" in node.log_text()
    assert "restored" not in node.log_text()
    assert node.status() == "", "started as if there were none"
    assert node.settle("web", "run") == "DONE"
    wait_for(lambda: open(ran).read() == "mount\ncheck\napp\n", what="every entry to run (app is a once entry)")
    assert os.stat(clstat).st_uid == 0, "replaced by the daemon's own"


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_a_clstat_others_can_write_is_ignored(node, mode):
    ran = os.path.join(node.dir, "ran")
    node.write_cltab(settings(node) + PLANTED.format(ran=ran))
    with open(node.clstat, "w") as stream:
        stream.write("Cluster::Init::Group web run DONE\n")
    os.chmod(node.clstat, mode)
    node.start()
    assert f"not restoring from {node.clstat}: writable by group or others" in node.log_text()
    assert node.status() == ""


def test_a_trusted_clstat_keeps_the_restore_rules(node):
    ran = os.path.join(node.dir, "ran")
    node.write_cltab(settings(node) + PLANTED.format(ran=ran))
    with open(node.clstat, "w") as stream:
        stream.write("Cluster::Init::Group web run DONE\n")
    os.chmod(node.clstat, 0o644)
    node.start()
    wait_for(lambda: "group web restored at level run DONE" in node.log_text(), what="the restore")
    assert node.status() == "web run DONE\n"
    assert not os.path.exists(ran), "nothing of it was left, and it had settled: nothing runs"


# ---------------------------------------------------------------- item 1: a symlink on the way

def shared_directory(public, gid):
    """A shared sticky directory as in the issue: root's, mode 1775, group ``gid``."""
    shared = public / "shared"
    shared.mkdir()
    os.chown(shared, 0, gid)
    os.chmod(shared, 0o1775)
    return shared


def secret_file(public):
    """A root-only directory holding a root-owned file an attacker wants appended to."""
    secret = public / "secret"
    secret.mkdir(mode=0o700)
    (secret / "clinit.log").write_text("precious\n")
    (secret / "clstat").write_text("precious\n")
    return secret


def untouched(secret):
    assert sorted(os.listdir(secret)) == ["clinit.log", "clstat"], "nothing was created there"
    assert (secret / "clinit.log").read_text() == "precious\n" and (secret / "clstat").read_text() == "precious\n"


@pytest.mark.parametrize("name", ["log", "clstat", "socket", "pidfile"])
def test_a_symlink_planted_on_the_way_refuses_the_start(node, public, name):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    secret = secret_file(public)
    code, _out, err = run_as(uid, gid, lambda: os.symlink(secret, shared / "logs") or 0)
    assert code == 0, err
    paths = {"log": node.log, "clstat": node.clstat, "socket": node.socket, "pidfile": node.dir + "/clinit.pid"}
    paths[name] = f"{shared}/logs/" + {"log": "clinit.log", "socket": "clinit.s"}.get(name, name)
    node.write_cltab(f":::socket:{paths['socket']}\n:::clstat:{paths['clstat']}\n:::log:{paths['log']}\n"
                     f":::pidfile:{paths['pidfile']}\ng:t:1:wait:true\n")
    for background in ([["-b"]] if name == "pidfile" else [[], ["-b"]]):
        result = daemon_command(node, *background)
        refused(result, f"{shared}/logs is a symlink owned by uid {uid}, not root; not following it")
        untouched(secret)


def test_a_directory_swapped_for_a_symlink_while_the_daemon_runs_is_not_followed(node, public):
    """The log's and clstat's directory is removed (a cleaner, an admin), another user puts a
    symlink in its place: the log reopened at SIGHUP, clstat rewritten, the lock file taken
    again, none goes through it."""
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    secret = secret_file(public)
    logs = shared / "logs"
    node.log, node.clstat = str(logs / "clinit.log"), str(logs / "clstat")
    node.write_cltab(settings(node) + "g:t:12:wait:true\n")
    node.start()
    assert node.settle("g", "1") == "DONE"
    assert "g 1 DONE" in open(node.clstat).read()
    shutil.rmtree(logs)
    code, _out, err = run_as(uid, gid, lambda: os.symlink(secret, logs) or 0)
    assert code == 0, err
    node.daemon.send_signal(signal.SIGHUP)
    assert node.settle("g", "2") == "DONE"
    node.client().ping()
    wait_for(lambda: "not following it" in node.daemon_stderr(), what="the refusals said")
    untouched(secret)


def test_trusted_symlinks_on_the_way_are_followed(node, public):
    """/var/run -> /run: root's symlink in a directory only root can write."""
    (public / "var").mkdir()
    (public / "run").mkdir()
    os.symlink(public / "run", public / "var" / "run")
    where = public / "var" / "run" / "clinit"
    pidfile = where / "clinit.pid"
    node.socket, node.clstat, node.log = str(where / "clinit.s"), str(where / "clstat"), str(where / "clinit.log")
    node.write_cltab(settings(node, f":::pidfile:{pidfile}") + "g:t:1:wait:true\n")
    started = subprocess.run([sys.executable, CLINIT, "-c", node.cltab, "-d", "-b"], cwd=node.dir,
                             env=node.env(), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        assert node.settle("g", "1") == "DONE"
        made = set(os.listdir(public / "run" / "clinit"))
        assert {"clinit.log", "clinit.pid", "clinit.s", "clinit.s.lock", "clstat"} <= made, made
    finally:
        assert node.clinit("-k", "-w", "-t", "30").returncode == 0


# ---------------------------------------------------------------- item 8: no descriptor of the daemon reaches a child

def child_fds(node, pidfile):
    """{fd: target} of the entry's child once it has exec'ed sleep."""
    child = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the child"))
    wait_for(lambda: "sleep" in open(f"/proc/{child}/cmdline").read(), what="the child's exec")
    return {int(fd): os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")}


@pytest.mark.parametrize("redirections", ["5>{dir}/five 7<{dir}/cltab", "<&- >&- 2>&- 5>{dir}/five 9>{dir}/nine"])
def test_descriptors_the_daemon_was_started_with_never_reach_a_child(node, redirections):
    pidfile = os.path.join(node.dir, "svc.pid")
    node.write_cltab(settings(node) + f"g:svc:1:respawn:echo $$ > {pidfile}; exec sleep 1000\n")
    shell = f'exec "$@" {redirections.format(dir=node.dir)}'
    node.start(["sh", "-c", shell, "sh", sys.executable, CLINIT, "-d", "-c", node.cltab])
    daemon_fds = {int(fd): os.readlink(f"/proc/{node.daemon.pid}/fd/{fd}")
                  for fd in os.listdir(f"/proc/{node.daemon.pid}/fd")}
    assert daemon_fds[5] == os.path.join(node.dir, "five"), daemon_fds
    node.tell("g", "1")
    fds = child_fds(node, pidfile)
    assert sorted(fds) == [0, 1, 2] and fds[0] == "/dev/null", fds


def test_without_closefrom_every_descriptor_of_the_daemon_is_sealed(tmp_path):
    """Where glibc cannot close descriptors in the child (older than 2.34, or no ctypes
    posix_spawn), sealing (close-on-exec) is all there is: an inherited one must not pass."""
    from cluster_init.launcher import Launcher

    inherited = os.open(tmp_path / "inherited", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(inherited, True)
    launcher = Launcher()
    launcher._spawner.available = False  # the Python os.posix_spawn path
    try:
        launcher.seal_descriptors()
        pidfile = tmp_path / "pid"
        pid = launcher.spawn("/bin/sh", ["/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], dict(os.environ))
        try:
            wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the child")
            wait_for(lambda: "sleep" in open(f"/proc/{pid}/cmdline").read(), what="the exec")
            fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
            assert fds == [0, 1, 2], fds
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        os.close(inherited)


# ---------------------------------------------------------------- the same faults elsewhere

def test_a_cltab_reached_through_another_users_symlink_is_refused(node, public):
    """The old check looked at where the symlink led (root's), not at whose it was."""
    uid, gid = nobody()
    shared = public / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    code, _out, err = run_as(uid, gid, lambda: os.symlink(node.dir, shared / "conf") or 0)
    assert code == 0, err
    result = node.clinit("--check", "-c", f"{shared}/conf/cltab")
    assert result.returncode == 6
    assert f"not trusted: {shared}/conf is a symlink owned by uid {uid}, not root; not following it" in result.stderr
    result = daemon_command(node, "-c", f"{shared}/conf/cltab")
    assert result.returncode == 6 and "not following it" in result.stderr


def test_a_cltab_behind_roots_own_symlinks_is_read(node, public):
    """/etc/cltab -> /etc/cluster/cltab: root's symlink, in a directory only root can write."""
    os.symlink(node.cltab, public / "cltab")
    os.symlink(public / "cltab", public / "again")
    result = node.clinit("--check", "-c", str(public / "again"))
    assert result.returncode == 0, result.stderr


def test_the_daemons_lock_probe_never_blocks_on_a_fifo(tmp_path):
    from cluster_init import socketlock

    os.mkfifo(tmp_path / "clinit.s.lock")
    code = f"from cluster_init import socketlock; print(socketlock.held({str(tmp_path / 'clinit.s')!r}))"
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=LIB),
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.stdout == "None\n", result
    assert socketlock.held(str(tmp_path / "nothing.s")) is False


def test_children_never_run_in_a_directory_reached_through_another_users_symlink(node, public):
    uid, gid = nobody()
    shared = shared_directory(public, gid)
    secret = secret_file(public)
    code, _out, err = run_as(uid, gid, lambda: os.symlink(secret, shared / "work") or 0)
    assert code == 0, err
    node.write_cltab(settings(node, f":::directory:{shared}/work") + "w:job:up:wait:echo root was here > clstat\n")
    node.start()
    assert node.settle("w", "up") == "FAILED"
    untouched(secret)
    (row,) = [line.split("\t") for line in node.clinit("-l").stdout.splitlines()]
    assert f"{shared}/work is a symlink owned by uid {uid}, not root; not following it" in row[9], row


def test_children_may_run_in_a_directory_of_another_user(node, public):
    """Only symlinks are checked on the way to a working directory: an entry may run in its
    user's home, as before."""
    uid, gid = nobody()
    home = public / "home"
    home.mkdir()
    os.chown(home, uid, gid)
    node.write_cltab(settings(node, f":::directory:{home}") + f"w:job:up:wait:pwd > {node.out}\n")
    node.start()
    assert node.settle("w", "up") == "DONE"
    assert node.out_lines() == [str(home)]


def test_a_walk_of_links_only_checks_symlinks_not_directories(public):
    uid, gid = nobody()
    theirs = public / "theirs"
    theirs.mkdir()
    os.chown(theirs, uid, gid)
    with pytest.raises(PermissionError):
        safepath.open_directory(str(theirs), strict=True)
    os.close(safepath.open_directory(str(theirs), strict=True, links_only=True))
    code, _out, err = run_as(uid, gid, lambda: os.symlink("/", theirs / "root") or 0)
    assert code == 0, err
    with pytest.raises(PermissionError) as refused_walk:
        safepath.open_directory(f"{theirs}/root", strict=True, links_only=True)
    assert "not following it" in refused_walk.value.strerror


def test_a_daemon_started_with_closed_descriptors_is_replaced_after_a_kill(node):
    """Issue 17, item 8's consequence: had the lock landed on 1 or 2, every child would hold
    it, and no new daemon could start (and adopt) after a kill -9 while one lived."""
    pidfile = os.path.join(node.dir, "svc.pid")
    node.write_cltab(settings(node) + f"g:svc:1:respawn:echo $$ > {pidfile}; exec sleep 1000\n")
    node.start(["sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh", sys.executable, CLINIT, "-d", "-c", node.cltab])
    assert node.settle("g", "1") == "DONE"
    svc = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="svc"))
    kill_daemon(node)
    node.start()
    wait_for(lambda: "adopting g:svc" in node.log_text(), what="the adoption")
    assert alive(svc) and tagged(node, "svc") == [svc]
