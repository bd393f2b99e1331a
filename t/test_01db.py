"""Port of 01db.t: the original's in-memory object store.

Our design keeps no general store; the daemon's lookups go through the
Registry (process machines by pid, by group, by tag).  These are the
original's insert / get by filter / update / delete / list, on it.
"""

from cluster_init.process import Process
from cluster_init.states import ProcState

from machine_rig import Rig, master


def machines(rig, *tags):
    table = master()
    return {
        entry.tag: Process(entry, rig.ctx) for entry in table.entries if entry.tag in tags
    }


def test_insert_and_list():
    rig = Rig()
    procs = machines(rig, "hello1", "hello2", "pid1")
    assert len(rig.registry) == 3
    assert list(rig.registry) == list(procs.values())


def test_get_by_group_and_tag():
    rig = Rig()
    procs = machines(rig, "hello1", "hello2", "pid1")
    assert rig.registry.find(group="hellogrp") == [procs["hello1"], procs["hello2"]]
    assert rig.registry.find(tag="pid1") == [procs["pid1"]]
    assert rig.registry.find(group="pidgrp", tag="pid1") == [procs["pid1"]]
    assert rig.registry.find(group="pidgrp", tag="hello1") == []
    assert rig.registry.find(group="nosuchgroup") == []


def test_get_by_pid_follows_updates():
    rig = Rig()
    procs = machines(rig, "pid1")
    proc = procs["pid1"]
    proc.start("1")
    first = rig.system.pid_of("pid1")
    assert rig.registry.by_pid(first) is proc
    rig.system.advance(5)  # a slow restart: no hold-back
    rig.exit("pid1")
    second = rig.system.pid_of("pid1")
    assert second != first
    assert rig.registry.by_pid(first) is None
    assert rig.registry.by_pid(second) is proc
    assert rig.registry.live_pids() == [second]


def test_delete():
    rig = Rig()
    procs = machines(rig, "hello1", "hello2")
    rig.registry.remove(procs["hello1"])
    assert list(rig.registry) == [procs["hello2"]]
    assert rig.registry.find(tag="hello1") == []


def test_exit_of_unknown_pid_is_ignored():
    rig = Rig()
    procs = machines(rig, "hello1")
    procs["hello1"].start("1")
    rig.registry.deliver([(99999, 0)])
    assert procs["hello1"].state is ProcState.RUNNING


def test_deadlines():
    rig = Rig()
    procs = machines(rig, "hello1", "pid1")
    assert rig.registry.next_deadline() is None
    procs["hello1"].start("1")
    procs["hello1"].stop()
    assert rig.registry.next_deadline() == rig.system.now() + 5
    rig.advance(5)
    assert rig.system.signals[-1][1] == 15
