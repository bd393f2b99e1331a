"""Port of 48off.t: an entry switched to mode off is stopped at the next tell."""

from daemon_rig import alive, wait_for


def test_off_stops_the_process(node):
    head = f":::socket:{node.socket}\n:::clstat:{node.clstat}\n:::log:{node.log}\n"
    command = f"echo $$ > {node.out}; exec sleep 30"
    node.write_cltab(head + f"offgrp:off1:1:once:{command}\n")
    node.start()
    node.tell("offgrp", "1")
    pid = wait_for(lambda: node.out_lines() and int(node.out_lines()[-1]), what="off1's pid")
    assert alive(pid)
    node.write_cltab(head + f"offgrp:off1:1:off:{command}\n")
    node.tell("offgrp", "1")
    wait_for(lambda: not alive(pid), timeout=2, what="off1 to stop within a second or so")
    node.wait_status("offgrp 1 DONE\n")
    assert node.starts("off1") == 1, "an off entry never runs"
