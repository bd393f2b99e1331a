"""Port of 60multichar.t: an entry in levels 1 and 2 (levels field "12")."""

from daemon_rig import wait_for


def test_entry_in_two_levels(node):
    node.start()
    node.tell("foogrp", "1")
    wait_for(lambda: node.out_lines() == ["foo1start"], what="foo1start")
    node.tell("foogrp", "2")  # foo1 is in level 2 too: it keeps running
    wait_for(lambda: node.out_lines() == ["foo1end"], what="foo1end")
    assert node.starts("foo1") == 1, "not restarted"
    assert node.status() == "foogrp 2 DONE\n"

    node.tell("foogrp", "99")
    node.tell("foogrp", "1")
    wait_for(lambda: node.starts("foo1") == 2, what="foo1 to run again")
    wait_for(lambda: node.out_lines() == ["foo1start"], what="foo1start again")

    node.tell("foogrp", "3")
    wait_for(lambda: node.exits("foo1", since="telling foogrp level 3") == 1, what="foo1 to be stopped")
    node.wait_status("foogrp 3 DONE\n")
    wait_for(lambda: node.out_lines() == ["foo3"], what="foo3")
    # foo1's whole process group is gone, so foo1end can never come
    assert "foogrp:foo1: stopping pid" in node.log_text()
    assert node.starts("foo3") == 1
