"""Port of 10_tell.t: tell, tell again, shut down."""


def test_tell(node):
    node.start()
    assert node.tell("hellogrp", "1") == "level transition started"
    assert node.tell("hellogrp", "3") == "level transition started"
    assert node.shutdown() == "all groups halting"
    assert node.daemon.returncode == 0
