"""A root daemon against what others plant, forge or leave open (issue 17, the daemon's side).

Each test is one of the issue's reproductions, with a real daemon and real
children in a per-test directory: a crash that leaves a stale level mark,
forged marks, a planted clstat, FIFOs where files should be, symlinks
swapped in on the way, descriptors the daemon was started with.  Tests
that act as another user (user nobody) need root and skip otherwise.
"""

import os
import signal
import subprocess
import uuid

from as_user import nobody
from cluster_init import procfs
from cluster_init.sysapi import RealSystem
from daemon_rig import settings, tagged, wait_for
from realproc import alive, environ_of


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
    parents = {10: 5, 5: 3, 3: 1, 20: 1}
    assert procfs.descends_from(10, 5, dict(parents)) and procfs.descends_from(10, 3, dict(parents))
    assert not procfs.descends_from(20, 5, dict(parents)), "handed to init: not ours"
    assert not procfs.descends_from(10, 7, dict(parents))
    assert not procfs.descends_from(10, 5, {10: 10}), "a loop ends"
    assert procfs.descends_from(os.getpid(), os.getppid()), "read from /proc"
    assert not procfs.descends_from(os.getppid(), os.getpid())


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
