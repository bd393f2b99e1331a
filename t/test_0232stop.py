"""Port of 0232stop.t: a new level told in the middle of a transition.

The original failed now and then; driven by the fake seam this port
is deterministic.
"""

import signal

from cluster_init.states import GroupState

from machine_rig import Rig


def test_told_1_while_starting_2():
    rig = Rig()
    group = rig.group("test")
    group.tell("2")
    assert group.state is GroupState.STARTING and rig.running() == ["test3"]
    rig.states()
    group.tell("1")
    assert group.state is GroupState.STOPPING
    assert rig.system.signals == [(rig.system.pid_of("test3"), signal.SIGINT)]
    rig.exit("test3", signum=signal.SIGINT)
    assert rig.states() == ["STOPPING", "DUMPING", "STARTING"]
    assert rig.running() == ["test1"]
    rig.exit("test1")
    rig.exit("test2")
    assert rig.states() == ["CHECKING", "DONE"]
    assert sorted(tag for tag, _proc in group.machines()) == ["test1", "test2"]
    assert "test4" not in [s.env["CLINIT_TAG"] for s in rig.system.spawned]


def test_told_2_while_checking_then_3_while_stopping():
    rig = Rig()
    group = rig.group("test")

    def redirect(g):
        if g.state is GroupState.CHECKING and g.level == "1":
            g.tell("2")  # queued: handled as soon as CHECKING is entered

    group.observer = lambda g: (rig.seen.append((g.level, g.state.value)), redirect(g))
    group.tell("1")
    rig.exit("test1")
    rig.exit("test2")
    assert rig.states() == ["STARTING", "CHECKING", "DONE", "STOPPING", "DUMPING", "STARTING"]
    assert rig.running() == ["test3"]
    group.observer = lambda g: rig.seen.append((g.level, g.state.value))

    # now told 2 again while STOPPING is under way: make it stop something
    group.tell("3")
    assert group.state is GroupState.STOPPING
    group.tell("1")
    group.tell("3")
    assert group.state is GroupState.STOPPING, "told 3 while STOPPING stays STOPPING"
    rig.exit("test3", signum=signal.SIGINT)
    assert rig.states() == ["STOPPING", "DUMPING", "STARTING"]
    assert rig.running() == ["test5"]
    rig.exit("test5")
    rig.exit("test6")
    assert rig.states() == ["CHECKING", "PASSED"]
    assert group.level == "3"


def test_redirect_back_to_level_being_stopped():
    """Told 2, then 1 (stopping test3), then 2 again before test3 exits."""
    rig = Rig()
    group = rig.group("test")
    group.tell("2")
    group.tell("1")
    group.tell("2")
    assert group.state is GroupState.STOPPING or group.state is GroupState.STARTING
    rig.exit("test3", signum=signal.SIGINT)
    assert group.state is GroupState.STARTING and group.level == "2"
    assert rig.running() == ["test3"], "test3 is started again once it has stopped"
    rig.exit("test3")
    rig.exit("test4")
    assert group.state is GroupState.DONE
