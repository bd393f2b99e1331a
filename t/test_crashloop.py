"""A crash loop is a failure (issue 18): the machines on the fake seam and clock.

A respawn entry counts as started once it has stayed up start_seconds;
its group is DONE only then.  While one of the level's respawn entries
is crash-looping (held back by the respawn guard, or exiting
start_limit_burst times within start_limit_interval seconds) or cannot
start, the group is FAILED, and that FAILED heals once the entry is up
again.  ``why`` says why, in words.
"""

import logging
import signal

import pytest

from cluster_init import cltab, why
from cluster_init.adopt import GONE, SETTLED, GroupPlan
from cluster_init.context import Timing
from cluster_init.states import ProcState as S

from machine_rig import Rig


def table(*lines):
    return cltab.parse("\n".join(lines) + "\n", "cltab")


WEB = table(
    "web:prep:run:wait:prepare",
    "web:srv:run:respawn:serve",
)


@pytest.fixture
def rig():
    return Rig(Timing())  # the daemon's defaults: start_seconds 1, 5 exits within 10 s


def told(rig, group_table=WEB, name="web", level="run"):
    group = rig.group(name, group_table)
    group.tell(level)
    return group


def exit_at_once(rig, tag, times, code=127, gap=0.01):
    for _ in range(times):
        rig.advance(gap)
        rig.exit(tag, code)


def test_a_respawn_entry_is_done_once_it_has_stayed_up_start_seconds(rig):
    group = told(rig)
    rig.exit("prep")
    srv = group.machine("srv")
    assert srv.state is S.RUNBG and group.state.value == "CHECKING", "not started yet: up for 0 s"
    rig.advance(0.99)
    assert group.state.value == "CHECKING"
    rig.advance(0.01)
    assert srv.state is S.DONE and group.state.value == "DONE"
    assert why.failures(group) == []


def test_start_seconds_0_is_the_perl_behaviour(rig):
    rig.ctx.timing = Timing(start_seconds=0)
    group = told(rig)
    rig.exit("prep")
    assert group.machine("srv").state is S.DONE and group.state.value == "DONE"


def test_a_command_that_exits_at_once_fails_its_group_and_says_why(rig, caplog):
    caplog.set_level(logging.WARNING, "cluster_init")
    group = told(rig)
    rig.exit("prep")
    exit_at_once(rig, "srv", 4)
    assert group.state.value == "CHECKING", "four failed starts"
    exit_at_once(rig, "srv", 1)
    assert group.state.value == "FAILED", "the fifth exit within 10 s: a crash loop"
    assert "web:srv: crash loop: exited 5 times within 10 s, last exit 127" in caplog.text
    exit_at_once(rig, "srv", 1)
    srv = group.machine("srv")
    assert srv.state is S.PAUSING and srv.crash_looping, "the guard holds it back"
    assert group.state.value == "FAILED"
    assert len(rig.system.spawned) == 1 + 6
    (failure,) = why.failures(group)
    assert failure == ("srv", "crash loop: started 6 times in 0.06 s, last exit 127; held back, 60 s left")
    assert "web:srv respawning too rapidly: holding back 60 seconds" in caplog.text
    rig.advance(30)
    assert group.state.value == "FAILED"
    assert why.failures(group)[0][1].endswith("held back, 30 s left")


def test_after_the_hold_back_a_fixed_entry_heals_its_group(rig, caplog):
    caplog.set_level(logging.WARNING, "cluster_init")
    group = told(rig)
    rig.exit("prep")
    exit_at_once(rig, "srv", 6)
    assert group.state.value == "FAILED"
    rig.advance(60)  # the hold-back is over: started again; this time it stays up
    assert group.machine("srv").state is S.RUNBG and group.state.value == "FAILED"
    rig.advance(1)
    assert group.machine("srv").state is S.DONE
    assert group.state.value == "DONE", "this kind of FAILED heals itself"
    assert "web:srv: up for 1 s: no longer crash-looping" in caplog.text
    assert "group web: its entries are up again: DONE" in caplog.text


def test_a_service_dying_every_2_s_reads_failed_steadily(rig):
    group = told(rig)
    rig.exit("prep")
    rig.advance(1)
    assert group.state.value == "DONE"
    seen = []
    for _ in range(60):  # two minutes: up for 2 s, then dies
        rig.advance(1)
        seen.append(group.state.value)
        rig.advance(1)
        rig.exit("srv", 1)
        seen.append(group.state.value)
    first = seen.index("FAILED")
    assert first == 9, "the fifth exit within 10 s makes it a crash loop"
    assert set(seen[first:]) == {"FAILED"}, "no flapping back to DONE"
    assert "crash loop: exited 5 times within 10 s, last exit 1" in why.failures(group)[0][1]


@pytest.mark.parametrize("period", [2.3, 2.45])
def test_a_steady_loop_near_the_burst_does_not_flap(rig, period):
    """Ten seconds hold 4 or 5 of its exits: crash-looping from the fifth, and it stays so."""
    group = told(rig)
    rig.exit("prep")
    for _ in range(8):  # exits at 1.3, 2.6, ... 10.4 s: the fifth comes within 10 s
        rig.advance(period)
        rig.exit("srv", 1)
    assert group.state.value == "FAILED"
    for _ in range(100):
        rig.advance(period / 2)
        assert group.state.value == "FAILED"
        rig.advance(period / 2)
        rig.exit("srv", 1)
        assert group.state.value == "FAILED"


def test_a_service_that_stays_up_again_heals_once_its_exits_are_old(rig):
    group = told(rig)
    rig.exit("prep")
    rig.advance(1)
    for _ in range(5):
        rig.advance(1.5)
        rig.exit("srv", 1)
    assert group.state.value == "FAILED"
    rig.advance(1)  # up again for start_seconds, but 5 exits within the last 10 s
    assert group.state.value == "FAILED"
    srv = group.machine("srv")
    assert srv.state is S.DONE and srv.deadline is not None, "it looks again when the exits age"
    rig.advance(10)
    assert group.state.value == "DONE"
    assert why.failures(group) == []


def test_restart_forgets_past_exits(rig):
    group = told(rig)
    rig.exit("prep")
    rig.advance(1)
    for _ in range(5):
        rig.advance(1.5)
        rig.exit("srv", 1)
    assert group.state.value == "FAILED"
    group.machine("srv").restart()
    rig.exit("srv", signum=signal.SIGINT)
    assert group.state.value == "FAILED"
    rig.advance(1)
    assert group.state.value == "DONE", "clinit -r forgets the exits, as systemctl reset-failed"


def test_a_failed_test_keeps_the_group_failed_when_the_loop_ends(rig):
    group = told(rig, table("web:srv:run:respawn:serve", "web:chk:run:test:check"))
    exit_at_once(rig, "srv", 6)
    rig.exit("chk", 1)
    assert group.state.value == "FAILED"
    assert dict(why.failures(group))["chk"] == "test failed: exit 1"
    rig.advance(60)
    rig.advance(1)
    assert group.machine("srv").state is S.DONE and not group.machine("srv").crash_looping
    assert group.state.value == "FAILED", "only a crash loop's FAILED heals"
    assert why.failures(group) == [("chk", "test failed: exit 1")]


def test_a_wait_entry_that_cannot_start_keeps_the_group_failed(rig):
    rig.system.fail_spawns = 1
    group = told(rig, table("web:prep:run:wait:prepare", "web:srv:run:respawn:serve"))
    assert group.state.value == "CHECKING"
    rig.advance(1)
    assert group.state.value == "FAILED"
    assert why.failures(group) == [("prep", "cannot start: cannot fork: Resource temporarily unavailable")]
    rig.advance(600)
    assert group.state.value == "FAILED"


def test_a_respawn_entry_that_cannot_start_fails_and_heals(rig):
    group = told(rig)
    rig.exit("prep")
    rig.advance(1)
    assert group.state.value == "DONE"
    rig.system.fail_spawns = 1
    rig.exit("srv", 0)
    assert group.state.value == "FAILED"
    assert why.failures(group)[0][1].startswith("cannot start: cannot fork")
    rig.advance(60)
    assert group.state.value == "FAILED", "started again: up for 0 s"
    rig.advance(1)
    assert group.state.value == "DONE"


def test_a_group_restored_failed_stays_failed_until_told(rig):
    group = rig.group("web", WEB)
    plan = GroupPlan("web", "run", GONE, "FAILED", True)
    group.restore(plan)
    assert group.state.value == "FAILED"
    assert why.failures(group) == [("*", "FAILED when the previous daemon died (its clstat does not say why)")]
    group.tell("run")
    assert "prep" not in rig.running(), "taken as run: its group had settled"
    rig.advance(1)
    assert group.state.value == "DONE"


def test_a_settled_group_restored_failed_stays_failed(rig):
    from cluster_init.adopt import Adoption
    from cluster_init.states import ProcEvent

    rig.system.live.add(900)
    plan = GroupPlan("web", "run", SETTLED, "FAILED", True)
    (srv,) = [entry for entry in WEB.entries if entry.tag == "srv"]
    plan.adoptions.append((srv, Adoption(ProcEvent.ADOPTED_DONE, "run", leader=900, pids=(900,), pgids=(900,))))
    group = rig.group("web", WEB)
    group.restore(plan)
    assert group.state.value == "FAILED", "clstat said FAILED; it does not say why"
    rig.advance(100)
    assert group.state.value == "FAILED"


def test_wait_and_once_entries_that_exited_non_zero_are_warnings(rig):
    group = told(rig, table("web:prep:run:wait:prepare", "web:bg:run:once:bg", "web:srv:run:respawn:serve"))
    rig.exit("prep", 3)
    rig.exit("bg", signum=signal.SIGKILL)
    rig.advance(1)
    assert group.state.value == "DONE", "as in the Perl clinit"
    assert why.warnings(group) == [
        ("prep", "wait entry exited (exit 3)"),
        ("bg", "once entry exited (signal 9 (SIGKILL))"),
    ]
    assert why.lines(group) == ((), ("web:prep: wait entry exited (exit 3)", "web:bg: once entry exited (signal 9 (SIGKILL))"))
    group.tell("run")
    assert why.warnings(group) == [], "told again: those exits are older than the tell"


def test_an_entry_that_detaches_is_told_what_to_do(rig, caplog):
    caplog.set_level(logging.WARNING, "cluster_init")
    rig.ctx.daemon_id = "/run/clinit/clinit.s"
    group = told(rig, table("web:srv:run:respawn:setsid sleep 3001 &"))
    for _ in range(6):
        rig.system.escapee("web", "srv")  # each start leaves a copy behind
        rig.advance(0.01)
        rig.exit("srv", 0)
    assert group.state.value == "FAILED"
    hint = "it detaches: run it in the foreground, or set :::kill_mode:all"
    assert caplog.text.count(hint) == 1 + 1, "once when found, once in the crash loop's warning"
    assert "web:srv exits at once, and processes it started live on (pids" in caplog.text
    assert why.failures(group)[0][1].endswith(hint)


def test_a_failed_test_rerun_by_hand_still_keeps_the_group_failed_until_told(rig):
    group = told(rig, table("web:srv:run:respawn:serve", "web:chk:run:test:check"))
    rig.exit("chk", 1)
    rig.advance(1)
    assert group.state.value == "FAILED"
    group.machine("chk").restart()  # clinit -r web chk: it passes now
    rig.exit("chk", 0)
    assert group.machine("chk").state is S.PASS
    assert group.state.value == "FAILED", "a failed test's FAILED does not heal"
    assert why.failures(group) == [("*", "a test failed, or an entry could not start, at this level since it was told")]
    group.tell("run")
    assert group.state.value == "DONE"


def test_a_crash_looping_entry_stopped_by_hand_fails_nothing_and_a_start_by_hand_starts_over(rig):
    group = told(rig)
    rig.exit("prep")
    rig.advance(1)
    exit_at_once(rig, "srv", 6)
    assert group.state.value == "FAILED"
    group.stop_entry("srv")  # clinit --stop web srv
    assert group.machine("srv").stopped_by_hand and not group.machine("srv").crash_looping
    assert group.state.value == "DONE", "a deliberate stop is no failure: the crash loop is over"
    rig.exit("srv", signum=signal.SIGINT)
    group.start_entry("srv")  # clinit --start web srv: its past exits are forgotten
    assert group.machine("srv").state is S.RUNBG
    rig.exit("srv", 1)  # a failed start, but the first since the start by hand
    assert group.state.value == "DONE" and not group.machine("srv").crash_looping
    rig.advance(1)
    assert group.machine("srv").state is S.DONE and group.state.value == "DONE"
