"""Port of 0233passfail.t: test entries make the group PASSED or FAILED."""

from cluster_init import cltab
from cluster_init.states import GroupState

from cltab_master import entry_lines
from machine_rig import Rig, master


def test_passed_then_failed_after_an_entry_is_appended():
    rig = Rig()
    group = rig.group("test")
    group.tell("3")
    rig.exit("test5", 0)
    rig.exit("test6", 0)
    assert group.state is GroupState.PASSED
    assert rig.states() == ["STARTING", "CHECKING", "PASSED"]

    lines = entry_lines() + ["test:test7:3:test:false"]
    group.set_entries(cltab.parse("\n".join(lines) + "\n").entries_of("test"))
    group.tell("3")
    assert rig.running() == ["test7"], "only the new entry runs; the others passed already"
    rig.exit("test7", 1)
    assert group.state is GroupState.FAILED


def test_level_with_tests_and_others_is_done():
    rig = Rig()
    table = cltab.parse("g:t:1:test:true\ng:w:1:wait:true\n")
    group = rig.group("g", table)
    group.tell("1")
    rig.exit("t", 0)
    rig.exit("w", 0)
    assert group.state is GroupState.DONE


def test_entry_that_cannot_start_fails_the_group():
    rig = Rig()
    group = rig.group("test", master())
    rig.system.fail_spawns = 1
    group.tell("1")
    assert rig.running() == ["test2"], "the next entry still runs"
    rig.exit("test2")
    assert group.state is GroupState.FAILED
    group.tell("1")
    assert rig.running() == ["test1"], "told again, the failed entry is tried again"
