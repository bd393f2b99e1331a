"""Port of 021process.t: one process machine driven alone, mode by mode.

Driven through the fake seam with a fake clock, so nothing sleeps; the
last tests run real processes through the real seam.
"""

import logging
import os
import signal

import pytest

from cluster_init.errors import SpawnError
from cluster_init.context import Timing
from cluster_init.process import Process
from cluster_init.states import ProcEvent as E
from cluster_init.states import ProcState as S
from cluster_init import cltab, remains, sysapi

from machine_rig import Rig
from daemon_rig import wait_for
from realproc import RealRig, alive, environ_of, status_field


@pytest.fixture
def rig():
    return Rig()


def test_wait_mode(rig):
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.start("1")
    assert proc.state is S.RUNNING
    assert rig.states() == ["SETUP", "RUNFG", "RUNNING"]
    first = proc.pid
    rig.advance(2.9)
    assert proc.state is S.RUNNING, "a wait entry is not DONE before its command ends"
    rig.exit("t1")
    assert proc.state is S.DONE and proc.pid is None
    proc.stop()
    assert proc.state is S.CONFIGURED
    proc.start("1")
    assert proc.state is S.RUNNING and proc.pid != first
    proc.stop()
    assert proc.state is S.STOPPING
    assert rig.system.signals == [(proc.pid, signal.SIGINT)]
    rig.exit("t1", signum=signal.SIGINT)
    assert proc.state is S.CONFIGURED and proc.pid is None


def test_once_mode(rig):
    proc = rig.process("g:t1:1:once:sleep 5")
    proc.start("1")
    assert proc.state is S.DONE, "a once entry is DONE as soon as it started"
    assert rig.states() == ["SETUP", "RUNBG", "DONE"]
    proc.stop()
    assert proc.state is S.STOPPING
    rig.exit("t1", signum=signal.SIGINT)
    assert proc.state is S.CONFIGURED
    proc.start("1")
    assert proc.state is S.DONE and len(rig.system.spawned) == 2
    rig.exit("t1")
    assert proc.state is S.DONE, "a once entry stays DONE when its command ends"
    assert len(rig.system.spawned) == 2, "a once entry is not restarted"
    proc.stop()
    assert proc.state is S.CONFIGURED


def test_respawn_mode(rig):
    proc = rig.process("g:t1:1:respawn:sleep 3")
    proc.start("1")
    assert proc.state is S.DONE
    first = proc.pid
    rig.advance(3)
    rig.exit("t1")
    assert proc.state is S.DONE
    assert proc.pid is not None and proc.pid != first, "restarted with a new pid"
    assert rig.states()[-3:] == ["PAUSING", "RUNBG", "DONE"]
    assert len(rig.system.spawned) == 2


def test_test_mode_true(rig):
    proc = rig.process("g:t1:1:test:true")
    proc.start("1")
    assert proc.state is S.RUNTEST
    rig.exit("t1", 0)
    assert proc.state is S.PASS
    proc.start("1")
    assert proc.state is S.RUNTEST
    rig.exit("t1", 0)
    assert proc.state is S.PASS
    proc.stop()
    assert proc.state is S.CONFIGURED


def test_test_mode_false(rig):
    proc = rig.process("g:t1:1:test:false")
    proc.start("1")
    rig.exit("t1", 1)
    assert proc.state is S.FAIL
    proc.start("1")
    rig.exit("t1", 1)
    assert proc.state is S.FAIL


def test_test_killed_by_signal_fails(rig):
    proc = rig.process("g:t1:1:test:sleep 9")
    proc.start("1")
    rig.exit("t1", signum=signal.SIGKILL)
    assert proc.state is S.FAIL


def test_off_mode_never_runs(rig):
    proc = rig.process("g:t1:1:off:sleep 9")
    proc.start("1")
    assert proc.state is S.CONFIGURED
    assert rig.system.spawned == []


def test_stop_in_setup(rig):
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.state = S.SETUP  # SETUP lasts no time here: enter it as the table would
    proc.stop()
    assert proc.state is S.CONFIGURED
    assert rig.system.spawned == []


def test_stop_in_runfg(rig):
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.state = S.RUNFG
    proc.pid = 4242
    rig.registry.watch(4242, proc)
    rig.system.live.add(4242)
    proc.stop()
    assert proc.state is S.STOPPING
    assert rig.system.signals == [(4242, signal.SIGINT)]
    rig.system.exit(4242, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())
    assert proc.state is S.CONFIGURED and proc.pid is None


def test_stop_schedule_int_term_kill(rig):
    proc = rig.process("g:t1:1:once:trap '' INT TERM; sleep 99")
    proc.start("1")
    pid = proc.pid
    proc.stop()
    assert rig.system.signals == [(pid, signal.SIGINT)]
    rig.advance(4.9)
    assert rig.system.signals == [(pid, signal.SIGINT)]
    rig.advance(0.1)
    assert rig.system.signals[-1] == (pid, signal.SIGTERM)
    rig.advance(9.9)
    assert len(rig.system.signals) == 2
    rig.advance(0.1)
    assert rig.system.signals[-1] == (pid, signal.SIGKILL)
    rig.advance(1.0)  # still there (stuck in the kernel, say): SIGKILL again, every second
    assert rig.system.signals[-1] == (pid, signal.SIGKILL) and len(rig.system.signals) == 4
    rig.exit("t1", signum=signal.SIGKILL)
    assert proc.state is S.CONFIGURED and proc.deadline is None


def test_stop_delays_are_settings():
    rig = Rig(Timing(term_delay=1, kill_delay=2))
    proc = rig.process("g:t1:1:once:sleep 99")
    proc.start("1")
    proc.stop()
    rig.advance(1)
    rig.advance(2)
    assert [sig for _pid, sig in rig.system.signals] == [
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGKILL,
    ]


def test_stop_of_exited_process_sends_nothing(rig):
    proc = rig.process("g:t1:1:wait:true")
    proc.start("1")
    rig.exit("t1")
    proc.stop()
    assert proc.state is S.CONFIGURED
    assert rig.system.signals == []


def test_respawn_guard_holds_back_rapid_restarts(rig, caplog):
    proc = rig.process("g:t1:1:respawn:exit 0")
    caplog.set_level(logging.WARNING, "cluster_init")
    proc.start("1")
    for _ in range(5):
        rig.advance(0.1)
        rig.exit("t1")
        assert proc.state is S.DONE
    assert len(rig.system.spawned) == 6
    rig.advance(0.1)
    rig.exit("t1")  # the sixth rapid restart in a row is one too many
    assert proc.state is S.PAUSING
    assert len(rig.system.spawned) == 6
    assert "g:t1 respawning too rapidly" in caplog.text
    rig.advance(59.9)
    assert len(rig.system.spawned) == 6, "held back for 60 seconds"
    rig.advance(0.1)
    assert len(rig.system.spawned) == 7 and proc.state is S.DONE


def test_respawn_guard_forgives_slow_restarts(rig):
    proc = rig.process("g:t1:1:respawn:sleep 2")
    proc.start("1")
    for _ in range(20):
        rig.advance(2)
        rig.exit("t1")
        assert proc.state is S.DONE
    assert len(rig.system.spawned) == 21


def test_stop_while_held_back(rig):
    proc = rig.process("g:t1:1:respawn:exit 0")
    proc.start("1")
    for _ in range(6):
        rig.exit("t1")
    assert proc.state is S.PAUSING
    proc.stop()
    assert proc.state is S.CONFIGURED and proc.deadline is None
    rig.advance(120)
    assert len(rig.system.spawned) == 6


def test_failed_fork_is_logged_and_survived(rig, caplog):
    proc = rig.process("g:t1:1:wait:sleep 3")
    rig.system.fail_spawns = 1
    with caplog.at_level(logging.ERROR, "cluster_init"):
        proc.start("1")
    assert proc.state is S.CONFIGURED and proc.exec_failed
    assert "g:t1: cannot start" in caplog.text
    proc.start("1")
    assert proc.state is S.RUNNING and not proc.exec_failed


def test_child_environment(rig):
    proc = rig.process("web:httpd:ab:once:httpd")
    proc.start("b")
    env = rig.system.spawned[0].env
    assert (env["CLINIT_GROUP"], env["CLINIT_TAG"], env["CLINIT_LEVEL"]) == ("web", "httpd", "b")
    assert env["PATH"] == "/bin"


def test_unexpected_event_is_ignored(rig):
    proc = rig.process("g:t1:1:wait:sleep 3")
    proc.post(E.CONTINUE)
    assert proc.state is S.CONFIGURED


# --- real processes through the real seam -------------------------------


@pytest.fixture
def real():
    rig = RealRig(Timing(term_delay=0.5, kill_delay=0.5))
    yield rig
    rig.cleanup()


def test_real_wait_runs_and_stops(real):
    from cluster_init import cltab

    (entry,) = cltab.parse("g:t1:1:wait:exec sleep 30\n").entries
    proc = Process(entry, real.ctx)
    proc.start("1")
    assert proc.state is S.RUNNING, "running once the shell was exec'ed"
    pid = proc.pid
    assert alive(pid)
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid, "own session and process group"
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    proc.stop()
    real.drive_until(lambda: proc.state is S.CONFIGURED)
    assert not alive(pid), "the pid that was running is gone"


def test_real_stop_escalates_to_sigkill(real):
    from cluster_init import cltab

    (entry,) = cltab.parse("g:t1:1:once:trap '' INT TERM; while :; do sleep 0.1; done\n").entries
    proc = Process(entry, real.ctx)
    proc.start("1")
    pid = proc.pid
    real.drive_until(lambda: int(status_field(pid, "SigIgn"), 16) & (1 << (signal.SIGINT - 1)))  # trap is set
    proc.stop()
    real.drive_until(lambda: proc.state is S.CONFIGURED, timeout=10)
    assert os.WIFSIGNALED(proc.history.status) and os.WTERMSIG(proc.history.status) == signal.SIGKILL
    assert not alive(pid)


def test_real_test_mode(real):
    from cluster_init import cltab

    table = cltab.parse("g:yes:1:test:exit 0\ng:no:1:test:exit 3\n")
    yes, no = (Process(entry, real.ctx) for entry in table.entries)
    yes.start("1")
    no.start("1")
    real.drive_until(lambda: yes.ran and no.ran)
    assert (yes.state, no.state) == (S.PASS, S.FAIL)
    assert os.waitstatus_to_exitcode(no.history.status) == 3


def test_real_exec_failure_is_a_failure_not_an_exit(real, monkeypatch, caplog):
    from cluster_init import cltab

    monkeypatch.setattr(sysapi, "SHELL", "/nonexistent/sh")
    (entry,) = cltab.parse("g:t1:1:wait:true\n").entries
    proc = Process(entry, real.ctx)
    with caplog.at_level(logging.ERROR, logger="cluster_init"):
        proc.start("1")
    assert proc.state is S.CONFIGURED, "an exec failure is not taken for an exit"
    assert proc.exec_failed and proc.pid is None and proc.history.starts == 0
    assert real.system.reap() == [], "the child that could not exec is reaped already"
    assert "g:t1: cannot start: cannot exec /nonexistent/sh: No such file or directory" in caplog.text


def test_real_child_starts_clean(real):
    """Default dispositions, empty mask, stdin /dev/null, none of our descriptors."""
    from cluster_init import cltab

    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)  # as if inherited by the daemon when it started
    os.set_inheritable(leaked_w, True)
    real.system.seal_descriptors()  # what the daemon does at start
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        (entry,) = cltab.parse("g:t1:1:once:exec sleep 30\n").entries
        proc = Process(entry, real.ctx)
        proc.start("1")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(leaked_r)
        os.close(leaked_w)
    pid = proc.pid
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python ignores it; the child must not
    real.drive_until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("/sleep"))  # sh has exec'd
    assert int(status_field(pid, "SigBlk"), 16) == 0
    assert int(status_field(pid, "SigIgn"), 16) == 0
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    environ = environ_of(pid)
    assert b"CLINIT_TAG=t1" in environ and b"CLINIT_LEVEL=1" in environ


# ---- starts in batches (the daemon's loop serves clients between them) ----


def test_a_stop_before_the_fork_forks_nothing():
    from cluster_init.registry import Registry

    rig = Rig()
    rig.ctx.registry = rig.registry = Registry(rig.system, immediate=False)
    proc = rig.process("g:t1:1:once:sleep 5")
    proc.start("1")
    assert rig.registry.spawns_waiting() == 1 and rig.system.spawned == []
    proc.stop()
    assert proc.state is S.CONFIGURED
    assert rig.registry.run_spawns() == 0 and rig.system.spawned == []


def test_forks_come_in_batches():
    from cluster_init.registry import Registry

    rig = Rig()
    rig.ctx.registry = rig.registry = Registry(rig.system, immediate=False)
    procs = [rig.process(f"g:t{i}:1:once:sleep 5") for i in range(10)]
    for proc in procs:
        proc.start("1")
    assert rig.registry.run_spawns(4) == 4 and len(rig.system.spawned) == 4
    assert [proc.state for proc in procs[:5]] == [S.DONE] * 4 + [S.RUNBG]
    assert rig.registry.run_spawns(4) == 4 and rig.registry.run_spawns(4) == 2
    assert all(proc.state is S.DONE for proc in procs)


# ---- every process of the entry, not only its leader (LINGERING) ----


def test_a_stop_reaches_what_the_leader_left(rig):
    """`sleep 1003 &` as a once entry: the shell exits at once, sleep stays in its group."""
    proc = rig.process("g:t1:1:once:sleep 1003 &")
    proc.start("1")
    pgid = proc.pid
    sleeper = rig.system.member(pgid)
    rig.exit("t1", 0)
    assert proc.state is S.DONE and proc.pid is None
    proc.stop()
    assert proc.state is S.LINGERING, "the leader is gone, its group is not"
    assert rig.system.signals == [(pgid, signal.SIGINT)]
    rig.advance(5)  # a background job ignores SIGINT
    assert rig.system.signals[-1] == (pgid, signal.SIGTERM)
    rig.system.exit(sleeper, signum=signal.SIGTERM)
    rig.registry.deliver(rig.system.reap())  # it came back to us: we are its subreaper
    assert proc.state is S.CONFIGURED and proc.deadline is None


def test_a_stop_goes_on_when_the_leader_exits_first(rig):
    """`sh -c 'sleep 1001 & sleep 1002'`: SIGINT kills the shell and 1002, not 1001."""
    proc = rig.process("g:t1:1:once:sleep 1001 & sleep 1002")
    proc.start("1")
    pgid = proc.pid
    background = rig.system.member(pgid)
    proc.stop()
    assert proc.state is S.STOPPING
    rig.exit("t1", signum=signal.SIGINT)
    assert proc.state is S.LINGERING and proc.history.status is not None
    rig.advance(5)
    rig.advance(10)
    assert [sig for _pgid, sig in rig.system.signals] == [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    rig.system.exit(background, signum=signal.SIGKILL)
    rig.registry.deliver(rig.system.reap())
    assert proc.state is S.CONFIGURED


def test_respawn_remembers_every_group_it_started(rig):
    proc = rig.process("g:t1:1:respawn:daemonish &")
    proc.start("1")
    first = proc.pid
    left = rig.system.member(first)
    rig.advance(2)
    rig.exit("t1", 0)  # restarted: a new leader, a new group
    second = proc.pid
    assert second != first and proc.remains.pgids == {first, second}
    proc.stop()
    assert sorted(pgid for pgid, _sig in rig.system.signals) == sorted([first, second])
    rig.exit("t1", signum=signal.SIGINT)
    assert proc.state is S.LINGERING
    rig.system.exit(left, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())
    assert proc.state is S.CONFIGURED


def test_kill_mode_all_reaches_a_process_that_called_setsid(rig):
    rig.ctx.kill_mode = "all"
    rig.ctx.daemon_id = "/run/clinit/clinit.s"
    proc = rig.process("g:t1:1:once:setsid sleep 1004")
    proc.start("1")
    escapee = rig.system.escapee("g", "t1")
    rig.exit("t1", 0)
    proc.stop()
    assert proc.state is S.LINGERING
    assert ("pid", escapee, signal.SIGINT) in rig.system.signals
    rig.system.exit(escapee, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())
    assert proc.state is S.CONFIGURED


def kill_and_repeat(rig, repeats):
    """Move the clock past the stop schedule: SIGTERM, SIGKILL, then ``repeats`` seconds."""
    rig.advance(5)
    rig.advance(10)
    for _ in range(repeats):
        rig.advance(1)


def test_a_stop_gives_up_in_bounded_time_on_what_sigkill_does_not_end(rig, caplog):
    """Issue 17, item 6: a process SIGKILL cannot end (stuck in the kernel), or one that is
    not ours to signal: the entry is stopped anyway, a WARNING names what was left."""
    caplog.set_level(logging.INFO, "cluster_init")
    proc = rig.process("g:t1:1:once:sleep 1 & exec stuck")
    proc.start("1")
    leader = proc.pid
    member = rig.system.member(leader)
    proc.stop()
    kill_and_repeat(rig, remains.KILL_REPEATS - 1)
    assert proc.state is S.STOPPING, "SIGKILL is sent again a bounded number of times"
    kills = [sig for _pgid, sig in rig.system.signals].count(signal.SIGKILL)
    assert kills == remains.KILL_REPEATS
    rig.advance(1)
    assert proc.state is S.CONFIGURED and proc.pid is None, "stopped anyway"
    assert [sig for _pgid, sig in rig.system.signals].count(signal.SIGKILL) == kills, "no more"
    warning = [r for r in caplog.records if r.levelno == logging.WARNING and "giving up" in r.getMessage()]
    assert [r.getMessage() for r in warning] == [
        f"g:t1: giving up: still there {remains.KILL_REPEATS} s after SIGKILL: pid {leader},"
        f" process groups {leader}; the entry is taken as stopped"
    ]
    rig.advance(60)
    assert [sig for _pgid, sig in rig.system.signals].count(signal.SIGKILL) == kills
    rig.system.exit(leader, signum=signal.SIGKILL)
    rig.system.exit(member, signum=signal.SIGKILL)
    rig.registry.deliver(rig.system.reap())  # when it ends at last: a stray, no harm
    assert proc.state is S.CONFIGURED


def test_a_group_moves_on_when_a_stop_gives_up(tmp_path):
    rig = Rig()
    rig.ctx.kill_mode = "all"
    rig.ctx.daemon_id = "/run/clinit/clinit.s"
    group = rig.group("g", cltab.parse("g:t1:1:once:setsid stuck\ng:t2:2:wait:true\n", "test"))
    group.tell("1")
    escapee = rig.system.escapee("g", "t1")
    rig.exit("t1", 0)
    group.tell("2")
    kill_and_repeat(rig, remains.KILL_REPEATS)
    assert ("pid", escapee, signal.SIGKILL) in rig.system.signals
    assert (group.level, group.state.value) == ("2", "STARTING")
    rig.exit("t2", 0)
    assert (group.level, group.state.value) == ("2", "DONE")


def test_kill_mode_group_leaves_a_setsid_process_to_its_stop_entry(rig):
    rig.ctx.daemon_id = "/run/clinit/clinit.s"
    proc = rig.process("g:t1:1:wait:/etc/init.d/foo start")
    proc.start("1")
    rig.system.escapee("g", "t1")  # the daemon foo started, detached
    rig.exit("t1", 0)
    proc.stop()
    assert proc.state is S.CONFIGURED and rig.system.signals == []


def test_what_a_test_left_is_stopped_too(rig):
    proc = rig.process("g:t1:1:test:sleep 99 & true")
    proc.start("1")
    left = rig.system.member(proc.pid)
    rig.exit("t1", 0)
    assert proc.state is S.PASS
    proc.stop()
    assert proc.state is S.LINGERING
    rig.system.exit(left, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())
    assert proc.state is S.CONFIGURED


# ---- adoption: a new daemon takes over what its dead predecessor left ----


def test_adopted_respawn_is_done_and_respawns_when_it_exits(rig):
    from cluster_init.adopt import Adoption

    proc = rig.process("g:t1:1:respawn:exec sleep 99")
    proc.adopt(Adoption(E.ADOPTED_DONE, "1", leader=777, pids=(777,), pgids=(777,)))
    assert proc.state is S.DONE and proc.pid == 777 and proc.adopted
    (watch,) = rig.system.watched
    assert rig.system.watched[watch] == 777
    rig.advance(5)
    rig.pidfd_exit(777)  # its pidfd became readable
    assert proc.state is S.DONE and proc.pid != 777, "restarted, as any respawn entry"
    assert rig.system.watched == {}


def test_adopted_test_that_exits_fails(rig, caplog):
    from cluster_init.adopt import Adoption

    proc = rig.process("g:t1:1:test:sleep 5")
    proc.adopt(Adoption(E.ADOPTED_RUNTEST, "1", leader=778, pids=(778,), pgids=(778,)))
    assert proc.state is S.RUNTEST
    with caplog.at_level(logging.WARNING, logger="cluster_init"):
        rig.pidfd_exit(778)
    assert proc.state is S.FAIL
    assert "result is unknown after adoption" in caplog.text


def test_adopted_wait_that_exits_is_done(rig):
    from cluster_init.adopt import Adoption

    proc = rig.process("g:t1:1:wait:sleep 5")
    proc.adopt(Adoption(E.ADOPTED_RUNNING, "1", leader=779, pids=(779,), pgids=(779,)))
    assert proc.state is S.RUNNING and proc.busy
    rig.pidfd_exit(779)
    assert proc.state is S.DONE


def test_adopted_processes_are_stopped_by_their_groups(rig):
    from cluster_init.adopt import Adoption

    proc = rig.process("g:t1:1:once:sleep 99")
    rig.system.live.add(780)
    proc.adopt(Adoption(E.ADOPTED_DONE, "1", leader=780, pids=(780,), pgids=(780,)))
    proc.stop()
    assert rig.system.signals == [(780, signal.SIGINT)]
    rig.system.live.discard(780)
    rig.pidfd_exit(780)
    assert proc.state is S.CONFIGURED


def test_without_pidfds_an_adopted_leader_counts_as_done(rig):
    from cluster_init.adopt import Adoption

    rig.system.pidfds = False
    proc = rig.process("g:t1:1:wait:sleep 99")
    rig.system.live.add(781)
    proc.adopt(Adoption(E.ADOPTED_RUNNING, "1", leader=781, pids=(781,), pgids=(781,)))
    assert proc.state is S.DONE and proc.pid is None
    proc.stop()
    assert proc.state is S.LINGERING and rig.system.signals == [(781, signal.SIGINT)]
    rig.system.live.discard(781)
    rig.advance(5)  # no pidfd: the deadline finds the group empty
    assert proc.state is S.CONFIGURED


def test_a_respawn_entry_that_cannot_start_tries_again(rig):
    proc = rig.process("g:t1:1:respawn:exec sleep 99")
    rig.system.fail_spawns = 1
    proc.start("1")
    assert proc.state is S.PAUSING and proc.exec_failed, "held back, not given up"
    rig.advance(59)
    assert len(rig.system.spawned) == 0
    rig.advance(1)
    assert proc.state is S.DONE and not proc.exec_failed and len(rig.system.spawned) == 1


def test_a_once_entry_that_cannot_start_gives_up(rig):
    proc = rig.process("g:t1:1:once:exec sleep 99")
    rig.system.fail_spawns = 1
    proc.start("1")
    assert proc.state is S.CONFIGURED and proc.exec_failed


def test_a_group_number_a_stranger_took_is_not_signalled(rig):
    """The leader exited, its group emptied, and a stranger's new session took the number."""
    rig.ctx.daemon_id = "/run/clinit/clinit.s"
    proc = rig.process("g:t1:1:once:sleep 1 &")
    proc.start("1")
    pgid = proc.pid
    member = rig.system.member(pgid)
    rig.exit("t1", 0)
    rig.system.exit(member, 0)
    rig.registry.deliver(rig.system.reap())
    rig.system.live.add(pgid)  # the stranger
    rig.system.strangers.add(pgid)
    proc.stop()
    assert proc.state is S.CONFIGURED and rig.system.signals == []


def test_real_group_is_ours_only_with_our_marks():
    import subprocess

    system = sysapi.RealSystem()
    marks = {"CLINIT_DAEMON": "/run/x.s", "CLINIT_GROUP": "g", "CLINIT_TAG": "t"}
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    ours = subprocess.Popen(["sleep", "30"], start_new_session=True, env=dict(os.environ, **marks))
    try:
        for process in (stranger, ours):  # a vfork'ed child has no environment for a moment
            wait_for(lambda process=process: environ_of(process.pid), what="the exec")
        assert system.group_alive(stranger.pid)
        assert not system.group_is_ours(stranger.pid, "/run/x.s", "g", "t")
        assert system.group_is_ours(ours.pid, "/run/x.s", "g", "t")
        assert not system.group_is_ours(ours.pid, "/run/x.s", "g", "other")
    finally:
        for process in (stranger, ours):
            process.kill()
            process.wait()
