"""Port of 12blank.t: telling a group that is not in the cltab."""

import pytest

from cluster_init import DaemonError


def test_no_such_group(node):
    node.start()
    with pytest.raises(DaemonError, match="no such group"):
        node.tell("nosuchgroup", "1")
    assert node.tell("hellogrp", "1") == "level transition started", "the daemon goes on"
