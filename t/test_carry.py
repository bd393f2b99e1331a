"""What a handover carries across the exec (carry.py), and what the machines make of it.

Over the fake seam: one node (the image before the exec) is captured, the
record goes through JSON, and a second node on the same FakeSystem (the
same processes: the image after the exec) resumes from it.  Also the
record's descriptor (send, receive) and the signals blocked for the exec.
"""

import json
import os
import signal

import pytest

from cluster_init import carry
from cluster_init.marks import Found
from cluster_init.protocol import LIST_FIELDS
from cluster_init.signals import SignalBox, unblock
from cluster_init.states import ProcState

from node_rig import NodeRig, captured_log

CLTAB = """\
:::respawn_limit:1
:::respawn_hold:30
web:prep:1:wait:prepare
web:srv:1:respawn:serve
web:off:1:off:never
web:job:1:once:job
tests:chk:t:test:check
tests:bad:f:test:false
db:main:1:once:dbserver
flappy:fl:1:respawn:flap
"""


def handed_over(rig, tmp_path):
    """A second rig on rig's processes, resumed from rig's record (through JSON)."""
    record = json.loads(json.dumps(carry.capture(rig.node, [name for name, _l, _s in rig.clstat.rows()])))
    os.makedirs(tmp_path / "after", exist_ok=True)
    after = NodeRig(tmp_path / "after", open(rig.cltab, encoding="utf-8").read(), system=rig.system)
    after.node.resume(*carry.parse(record))
    return after


@pytest.fixture
def rig(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    rig.node.tell("web", "1")
    rig.exit("prep")
    rig.node.tell("tests", "t")
    rig.exit("chk")
    rig.node.tell("db", "1")
    rig.exit("main", code=0)
    rig.node.tell("flappy", "1")
    for _ in range(2):  # too rapidly: held back for 30 s
        rig.exit("fl", code=1)
    rig.advance(10)  # srv up start_seconds: DONE
    return rig


def test_a_resumed_node_lists_exactly_what_the_first_had(rig, tmp_path):
    assert rig.node.unrest() is None
    before = rig.node.rows()
    fl = rig.node.group("flappy").machine("fl")
    assert fl.state is ProcState.PAUSING and 19 < fl.held_back_for <= 20
    after = handed_over(rig, tmp_path)
    assert after.node.rows() == before, "state, pid, starts, last exit, time in state, notes"
    assert [(g.name, g.level, g.state.value) for g in after.node.groups.values()] == [
        (g.name, g.level, g.state.value) for g in rig.node.groups.values()
    ]
    after.clstat.flush()
    assert after.clstat_text() == (
        "Cluster::Init::Group web 1 DONE\nCluster::Init::Group tests t PASSED\n"
        "Cluster::Init::Group db 1 DONE\nCluster::Init::Group flappy 1 FAILED\n"
    )
    assert len(after.system.spawned) == len(rig.system.spawned), "nothing was started"
    assert not after.system.signals, "nothing was stopped"
    assert all(not proc.adopted for _tag, proc in after.node.group("web").machines())


def test_the_kept_leader_is_reaped_by_the_new_image_with_its_status(rig, tmp_path):
    after = handed_over(rig, tmp_path)
    srv = after.node.group("web").machine("srv")
    pid = srv.pid
    assert after.registry.by_pid(pid) is srv, "our child still: waitpid reports it, to the new machine"
    after.exit("srv", signum=signal.SIGKILL)
    assert srv.history.status == signal.SIGKILL and srv.history.starts == 2
    assert srv.pid != pid and srv.state is ProcState.RUNBG, "respawned"


def test_a_hold_back_goes_on_where_it_was(rig, tmp_path):
    after = handed_over(rig, tmp_path)
    fl = after.node.group("flappy").machine("fl")
    spawned = len(after.system.spawned)
    after.advance(19)
    assert len(after.system.spawned) == spawned, "still held back: not started afresh"
    after.advance(1.5)
    assert len(after.system.spawned) == spawned + 1 and fl.state is ProcState.RUNBG
    after.advance(1.5)
    assert fl.state is ProcState.DONE, "up start_seconds"


def test_a_failed_start_and_a_failed_test_stay_failed(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    rig.system.fail_spawns = 1
    rig.node.tell("db", "1")
    rig.node.tell("tests", "f")
    rig.exit("bad", code=1)
    assert rig.state("db") == ("1", "FAILED") and rig.state("tests") == ("f", "FAILED")
    after = handed_over(rig, tmp_path)
    assert after.state("db") == ("1", "FAILED") and after.state("tests") == ("f", "FAILED")
    main = after.node.group("db").machine("main")
    assert main.exec_failed and "cannot fork" in main.failure
    assert after.node.rows(["db", "tests"]) == rig.node.rows(["db", "tests"])


def test_a_halted_group_keeps_its_line(rig, tmp_path):
    rig.node.group("db").halt()
    assert rig.state("db") == ("1", "CONFIGURED")
    after = handed_over(rig, tmp_path)
    assert after.state("db") == ("1", "CONFIGURED")
    assert ("db", "1", "CONFIGURED") in after.clstat.rows()


def test_processes_adopted_after_a_crash_are_watched_again(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    rig.system.found = [Found(500, 500, "web", "srv", "1"), Found(501, 500, "web", "srv", "1")]
    rig.system.live.update({500})
    rig.node.restore([("web", "1", "DONE")])
    srv = rig.node.group("web").machine("srv")
    watches = rig.registry.watched(srv)
    assert srv.adopted and [pid for pid, _fd in watches] == [500, 501]
    watching = dict(rig.system.watched)
    after = handed_over(rig, tmp_path)
    kept = after.node.group("web").machine("srv")
    assert kept.adopted and kept.pid == 500 and after.registry.watched(kept) == watches
    assert rig.system.watched == watching, "the same pidfds, passed on: none opened anew"
    assert "adopted" in dict(zip(LIST_FIELDS, after.node.rows(["web"])[1]))["note"]


def test_unrest_names_what_moves(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    assert rig.node.unrest() is None
    rig.node.tell("web", "1")
    assert rig.node.unrest() == "group web is STARTING"
    rig.exit("prep")
    assert rig.node.unrest() == "group web is CHECKING", "srv not up start_seconds yet"
    rig.advance(1)
    assert rig.node.unrest() is None
    rig.node.group("web").machine("srv").restart()
    assert rig.node.unrest() == "web:srv is STOPPING"
    rig.exit("srv", signum=signal.SIGINT)
    assert rig.node.unrest() is None
    rig.node.shutdown("test")
    assert rig.node.unrest() == "the daemon is shutting down"


def test_a_group_that_left_the_cltab_meanwhile_is_halted(rig, tmp_path):
    record = carry.capture(rig.node)
    os.makedirs(tmp_path / "after")
    after = NodeRig(tmp_path / "after", CLTAB.replace("db:main:1:once:dbserver\n", ""), system=rig.system)
    with captured_log() as logged:
        after.node.resume(*carry.parse(json.loads(json.dumps(record))))
    assert "group db left the cltab: halting it" in logged.text()
    assert after.state("db") is None, "its process had exited: halted and forgotten at once"


@pytest.mark.parametrize("state", ["SETUP", "STOPPING", "NONSENSE"])
def test_a_record_with_a_state_that_cannot_be_carried_is_refused_whole(rig, state):
    record = json.loads(json.dumps(carry.capture(rig.node)))
    record["groups"][-1]["machines"][0]["state"] = state
    with pytest.raises(ValueError):
        carry.parse(record)


def test_the_record_goes_through_a_descriptor_and_only_to_us(tmp_path):
    fd = carry.send({"groups": [], "history": []})
    record = carry.receive(str(fd))
    assert record["magic"] == carry.MAGIC and record["pid"] == os.getpid() and record["format"] == carry.FORMAT
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once read
    fd = carry.send({"groups": []})
    os.lseek(fd, 0, os.SEEK_SET)
    data = json.loads(os.read(fd, 1 << 20))
    os.close(fd)
    for change, why in ((dict(pid=1), "not ours"), (dict(format=99), "format 99"), (dict(magic="x"), "no handover")):
        path = tmp_path / "record"
        path.write_text(json.dumps(dict(data, **change)))
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(ValueError, match=why):
            carry.receive(str(fd))
        with pytest.raises(OSError):
            os.fstat(fd)  # closed all the same: a regular file of ours
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(ValueError, match="not a handover record"):
            carry.receive(str(read_end))  # a pipe is never read: it could block
        os.fstat(read_end)  # and never closed: it is not ours
    finally:
        os.close(read_end)
        os.close(write_end)
    for value in ("probe", "", "-1", "99999"):
        with pytest.raises(ValueError):
            carry.receive(value)


def test_signals_wait_across_the_exec(tmp_path):
    box = SignalBox()
    box.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert signal.SIGUSR1 in box.pending
        blocked = box.block_for_exec()
        assert not box.pending and signal.SIGUSR1 in signal.sigpending(), "sent again, blocked: pending"
        os.kill(os.getpid(), signal.SIGTERM)  # one that comes meanwhile waits too
        assert signal.SIGTERM in signal.sigpending() and signal.SIGTERM not in box.pending
        unblock(blocked)
        assert {signal.SIGUSR1, signal.SIGTERM} <= box.take()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
        box.restore()


def test_an_entry_stopped_by_hand_stays_stopped(rig, tmp_path):
    rig.node.group("web").stop_entry("srv")
    rig.exit("srv", signum=signal.SIGINT)
    assert rig.node.unrest() is None and rig.node.group("web").machine("srv").stopped_by_hand
    after = handed_over(rig, tmp_path)
    srv = after.node.group("web").machine("srv")
    assert srv.state is ProcState.CONFIGURED and srv.stopped_by_hand and srv.pid is None
    assert after.node.rows(["web"]) == rig.node.rows(["web"]), "'stopped by hand' in its note"
    assert len(after.system.spawned) == len(rig.system.spawned)


def test_a_respawn_entry_not_up_yet_is_carried_with_its_deadline(tmp_path):
    rig = NodeRig(tmp_path, CLTAB)
    rig.node.tell("web", "1")
    rig.exit("prep")
    rig.advance(1)  # up: the group settles DONE
    rig.exit("srv", signum=signal.SIGKILL)  # respawned: RUNBG until up start_seconds again
    srv = rig.node.group("web").machine("srv")
    assert srv.state is ProcState.RUNBG and srv.pid is not None and rig.node.unrest() is None
    after = handed_over(rig, tmp_path)
    kept = after.node.group("web").machine("srv")
    assert (kept.state, kept.pid, kept.deadline) == (ProcState.RUNBG, srv.pid, srv.deadline)
    after.advance(1)
    assert kept.state is ProcState.DONE, "up start_seconds, on the deadline it had"
