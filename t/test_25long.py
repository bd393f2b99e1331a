"""Port of 25long.t: multi-character levels."""

import pytest


@pytest.mark.parametrize(
    "level, line", [("long1", "long"), ("long3", "long3"), ("long2", "long"), ("long3", "long3"), ("5", "long")]
)
def test_one_level(node, level, line):
    node.start()
    assert node.settle("hellogrp", level) == "DONE"
    assert node.out_lines() == [line]


def test_sequence(node):
    node.start()
    for level, line in [("long1", "long"), ("long3", "long3"), ("long2", "long"), ("long3", "long3"), ("5", "long")]:
        assert node.settle("hellogrp", level) == "DONE"
        assert node.status() == f"hellogrp {level} DONE\n"
        assert node.out_lines() == [line], level
