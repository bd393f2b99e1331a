"""Port of 0231level.t: group "test" told 1, then 2, then 1 again."""

from cluster_init.states import GroupState

from machine_rig import Rig


def finish(rig, *tags):
    for tag in tags:
        rig.advance(1)
        rig.exit(tag)


def test_level_changes():
    rig = Rig()
    group = rig.group("test")
    group.tell("1")
    finish(rig, "test1", "test2")
    assert group.state is GroupState.DONE
    assert rig.states() == ["STARTING", "CHECKING", "DONE"]

    group.tell("2")
    assert rig.running() == ["test3"]
    finish(rig, "test3", "test4")
    assert group.state is GroupState.DONE and group.level == "2"
    assert sorted(tag for tag, _proc in group.machines()) == ["test3", "test4"], "exactly test3 and test4"
    assert rig.states() == ["STOPPING", "DUMPING", "STARTING", "CHECKING", "DONE"]

    group.tell("1")
    assert rig.running() == ["test1"]
    finish(rig, "test1", "test2")
    assert group.state is GroupState.DONE and group.level == "1"
    assert sorted(tag for tag, _proc in group.machines()) == ["test1", "test2"]
    tags = [spawned.env["CLINIT_TAG"] for spawned in rig.system.spawned]
    assert tags == ["test1", "test2", "test3", "test4", "test1", "test2"]


def test_same_level_again_does_not_rerun():
    rig = Rig()
    group = rig.group("test")
    group.tell("1")
    finish(rig, "test1", "test2")
    group.tell("1")
    assert group.state is GroupState.DONE
    assert len(rig.system.spawned) == 2, "entries that ran are not run again"


def test_entry_in_old_and_new_level_keeps_running():
    from cluster_init import cltab

    rig = Rig()
    table = cltab.parse("g:both:12:once:sleep 9\ng:one:1:once:sleep 9\ng:two:2:once:sleep 9\n")
    group = rig.group("g", table)
    group.tell("1")
    both = group.machine("both").pid
    group.tell("2")
    assert group.state is GroupState.STOPPING
    assert rig.system.signals == [(rig.system.pid_of("one"), 2)], "only 'one' is stopped"
    rig.exit("one", signum=2)
    assert group.state is GroupState.DONE
    assert group.machine("both").pid == both, "untouched: same pid"
    assert rig.running() == ["both", "two"]
