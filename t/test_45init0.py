"""Port of 45init0.t: level 0 is an ordinary level (the Perl one's was broken)."""

from daemon_rig import alive, stays, wait_for


def test_level_zero_stops_the_group(node):
    node.start()
    node.tell("pidgrp", "1")
    pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="pid1's pid")
    assert alive(pid)
    node.tell("pidgrp", "0")
    node.wait_status("pidgrp 0 DONE\n")
    wait_for(lambda: not alive(pid), what="pid1 to stop")
    assert stays(lambda: node.out_lines(), 2.0, "OUT") == [str(pid)], "not restarted"
    assert node.starts("pid1") == 1


def test_group_zero(node):
    node.write_cltab(open(node.cltab).read() + "0:zero:0:wait:echo zero > " + node.out + "\n")
    node.start()
    assert node.settle("0", "0") == "DONE"
    assert node.out_lines() == ["zero"]
    assert node.status(group="0") == "0 DONE\n"
    assert node.status(group="0", level="0") == "DONE"
