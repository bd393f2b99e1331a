"""Port of 20wait.t: wait entries, level changes, and no rerun at the same level."""

from daemon_rig import wait_for


def test_wait(node):
    node.start()
    node.tell("hellogrp", "1")
    node.wait_status("1 DONE\n", group="hellogrp")
    assert len(node.out_lines()) == 1

    node.tell("hellogrp", "3")
    assert node.status() == "hellogrp 3 STARTING\n", "hello3 sleeps: the group is STARTING"
    assert node.status(group="hellogrp", level="3") == "STARTING"
    assert len(node.out_lines()) == 1, "OUT untouched while hello3 sleeps"
    node.wait_status("hellogrp 3 DONE\n")
    assert node.out_lines() == []

    node.tell("hellogrp", "1")
    node.wait_status("hellogrp 1 DONE\n")
    assert len(node.out_lines()) == 1

    open(node.out, "w").close()
    starts = node.starts("hello1")
    node.tell("hellogrp", "1")  # the daemon handles a tell before it answers
    assert node.status() == "hellogrp 1 DONE\n"
    assert node.starts("hello1") == starts, "telling the current level reruns nothing"
    assert node.out_lines() == []
    assert wait_for(lambda: node.client().wait("hellogrp", "1")) == "DONE"
