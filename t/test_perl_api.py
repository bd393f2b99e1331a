"""The Perl API's tell conventions, through the Python API (issue 12)."""

import pytest

from daemon_rig import wait_for


@pytest.mark.parametrize("level", [":::REREAD:::", "::REREAD::"])
def test_tell_reread_rereads_the_cltab(node, level):
    node.start()
    node.settle("pidgrp", "1")
    text = open(node.cltab).read()
    node.write_cltab("".join(line for line in text.splitlines(True) if not line.startswith("pidgrp:")))
    assert node.client().tell(":::ALL:::", level) == "cltab reread"
    wait_for(lambda: "pidgrp" not in node.status(), what="pidgrp, gone from the cltab, to be halted")
    assert node.client().tell("anygroup", level) == "cltab unchanged", "whatever the group"


@pytest.mark.parametrize("level", [":::SHUTDOWN:::", "::SHUTDOWN::"])
def test_tell_shutdown_shuts_the_daemon_down(node, level):
    node.start()
    node.settle("pidgrp", "1")
    assert node.client().tell(":::ALL:::", level) == "all groups halting"
    assert node.daemon.wait(30) == 0


def test_a_tell_of_a_new_group_rereads_the_cltab_first(node):
    node.start()
    node.write_cltab(open(node.cltab).read() + "newgrp:new1:1:wait:true\n")
    assert node.client().tell("newgrp", "1") == "level transition started"
    assert node.client().wait("newgrp", "1", timeout=10) == "DONE"


def test_the_wire_protocol_keeps_its_strict_names(node):
    from cluster_init import DaemonError

    node.start()
    with pytest.raises(DaemonError, match="bad group"):
        node.client().request("tell", ":::ALL:::", "1")
