"""Port of 0230group.t: a group machine for group "test", told level 1."""

import pytest

from cluster_init.states import GroupState

from machine_rig import Rig
from realproc import RealRig


def test_level_1_starts_test1_then_test2():
    rig = Rig()
    group = rig.group("test")
    group.tell("1")
    assert group.state is GroupState.STARTING
    assert rig.running() == ["test1"], "wait entries run one after the other"
    rig.advance(3)
    rig.exit("test1")
    assert rig.running() == ["test2"]
    rig.advance(2)
    rig.exit("test2")
    assert rig.states() == ["STARTING", "CHECKING", "DONE"]
    assert group.state is GroupState.DONE and group.level == "1"
    assert [spawned.env["CLINIT_TAG"] for spawned in rig.system.spawned] == ["test1", "test2"]
    assert sorted(tag for tag, _proc in group.machines()) == ["test1", "test2"], "exactly test1 and test2 have processes"


def test_group_zero_and_level_zero_are_ordinary():
    from cluster_init import cltab

    rig = Rig()
    table = cltab.parse("0:z1:0:wait:true\n0:z2:1:wait:true\n")
    group = rig.group("0", table)
    group.tell("0")
    assert rig.running() == ["z1"]
    rig.exit("z1")
    assert group.state is GroupState.DONE and group.level == "0"


def test_unknown_level_settles_at_done():
    rig = Rig()
    group = rig.group("test")
    group.tell("99")
    assert rig.states() == ["STARTING", "CHECKING", "DONE"]
    assert rig.system.spawned == []


@pytest.fixture
def real():
    rig = RealRig()
    yield rig
    rig.cleanup()


def test_real_group_runs_its_level_in_order(real, tmp_path):
    from cluster_init import cltab
    from cluster_init.group import Group

    out = tmp_path / "out"
    table = cltab.parse(
        f"g:a:1:wait:sleep 0.2; echo a >> {out}\n"
        f"g:b:1:once:echo b >> {out}\n"
        f"g:c:2:wait:echo c >> {out}\n"
        f"g:d:1:wait:echo d >> {out}\n"
    )
    seen = []
    group = Group("g", table.entries_of("g"), real.ctx, observer=lambda g: seen.append(g.state))
    group.tell("1")
    real.drive_until(lambda: group.state is GroupState.DONE)
    real.drive_until(lambda: len(out.read_text().split()) == 3)
    first, *others = out.read_text().split()
    # a before the others; b is a once entry: d does not wait for it to finish
    assert (first, sorted(others)) == ("a", ["b", "d"])
    assert seen[-1] is GroupState.DONE


def test_a_settled_group_fails_when_a_respawn_entry_cannot_start_again():
    from cluster_init import cltab as cltab_module

    rig = Rig()
    table = cltab_module.parse("g:svc:1:respawn:exec sleep 99\n")
    group = rig.group("g", table)
    group.tell("1")
    assert group.state.value == "DONE"
    rig.system.fail_spawns = 1
    rig.advance(5)
    rig.exit("svc", 0)  # it exits; its restart fails
    assert group.state.value == "FAILED"
    rig.advance(60)  # tried again later, and it starts
    assert rig.running() == ["svc"]


def test_a_cltab_changed_while_a_level_starts_waits_for_the_next_tell():
    from cluster_init import cltab as cltab_module

    rig = Rig()
    group = rig.group("g", cltab_module.parse("g:first:1:wait:sleep 5\ng:second:1:wait:true\n"))
    group.tell("1")
    assert rig.running() == ["first"]
    group.set_entries(cltab_module.parse("g:first:1:wait:sleep 5\ng:new:1:wait:true\n").entries_of("g"))
    rig.exit("first")
    assert [s.command for s in rig.system.spawned] == ["sleep 5", "true"]
    assert rig.system.spawned[-1].env["CLINIT_TAG"] == "second", "the level goes on with the entries it began with"
    rig.exit("second")
    assert group.state.value == "DONE"
    group.tell("1")
    assert rig.system.spawned[-1].env["CLINIT_TAG"] == "new", "the next tell takes the new cltab"
