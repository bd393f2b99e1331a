"""Port of 0234halt.t: HALT from any state ends in CONFIGURED."""

import signal

import pytest

from cluster_init import cltab
from cluster_init.states import GroupState

from machine_rig import Rig


def halt_and_finish(rig, group):
    group.halt()
    for pid in sorted(rig.system.live):
        rig.system.exit(pid, signum=signal.SIGINT)
    rig.registry.deliver(rig.system.reap())
    assert group.state is GroupState.CONFIGURED
    assert group.machines() == [] and len(rig.registry) == 0
    assert rig.system.live == set()


def halt_on_entering(rig, group, state):
    """Make the group's observer halt it as soon as it enters ``state``."""

    def observer(g):
        rig.seen.append(g.state.value)
        if g.state is state:
            g.halt()  # queued: handled right after the step that entered the state

    group.observer = observer


def test_halt_from_starting():
    rig = Rig()
    group = rig.group("test")
    group.tell("1")
    assert group.state is GroupState.STARTING
    group.halt()
    assert group.state is GroupState.HALTING
    assert rig.system.signals == [(rig.system.pid_of("test1"), signal.SIGINT)]
    halt_and_finish(rig, group)
    assert rig.running() == [], "test2 never started"


def test_halt_from_checking():
    rig = Rig()
    group = rig.group("test")

    halt_on_entering(rig, group, GroupState.CHECKING)
    group.tell("1")
    rig.exit("test1")
    rig.exit("test2")
    assert rig.states() == ["STARTING", "CHECKING", "DONE", "HALTING", "CONFIGURED"]
    assert group.state is GroupState.CONFIGURED


def test_halt_from_done_with_background_process():
    rig = Rig()
    group = rig.group("g", cltab.parse("g:bg:1:respawn:sleep 99\n"))
    group.tell("1")
    assert group.state is GroupState.DONE
    halt_and_finish(rig, group)


def test_halt_from_stopping():
    rig = Rig()
    group = rig.group("test")
    group.tell("1")
    group.tell("2")
    assert group.state is GroupState.STOPPING
    halt_and_finish(rig, group)


def test_halt_from_dumping():
    rig = Rig()
    group = rig.group("test")

    halt_on_entering(rig, group, GroupState.DUMPING)
    group.tell("1")
    rig.exit("test1")
    rig.exit("test2")
    group.tell("2")
    assert "DUMPING" in rig.states()
    halt_and_finish(rig, group)


@pytest.mark.parametrize("final", ["PASSED", "FAILED"])
def test_halt_from_passed_and_failed(final):
    rig = Rig()
    if final == "PASSED":  # a level that is all tests
        group = rig.group("g", cltab.parse("g:t:1:test:x\n"))
        group.tell("1")
        rig.exit("t", 0)
    else:  # a failed test beside a background process, which halt must stop
        group = rig.group("g", cltab.parse("g:t:1:test:x\ng:bg:1:once:sleep 99\n"))
        group.tell("1")
        rig.exit("t", 1)
        assert rig.running() == ["bg"]
    assert group.state.value == final
    halt_and_finish(rig, group)


def test_halt_when_configured_does_nothing():
    rig = Rig()
    group = rig.group("test")
    group.halt()
    assert group.state is GroupState.CONFIGURED and rig.states() == []
