"""Port of 40respawn.t: respawn restarts; the too-rapid rule holds back."""

import os
import signal

from daemon_rig import alive, stays, wait_for


def pid_in_out(node):
    lines = node.out_lines()
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def test_respawn_after_kill(node):
    node.start()
    node.tell("pidgrp", "1")
    first = wait_for(lambda: pid_in_out(node), what="a pid in OUT")
    assert alive(first)
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: pid_in_out(node) != first and pid_in_out(node), what="a new pid")
    assert second != first and alive(second)
    node.tell("pidgrp", "99")
    node.wait_status("pidgrp 99 DONE\n")
    wait_for(lambda: not alive(second), what="the respawned process to stop")


def test_too_rapid(node):
    node.start()
    node.tell("hellogrp", "2")
    wait_for(lambda: "respawning too rapidly" in node.log_text(), what="the hold-back")
    lines = stays(lambda: len(node.out_lines()), 5.0, "OUT")
    assert 5 <= lines <= 10
    assert "hellogrp:hello2 respawning too rapidly: holding back 60 seconds" in node.daemon_stderr()
    # The Perl clinit called the group DONE here (its script only counts lines); a
    # crash loop is a failure in ours (issue 18, clinit(8) DIFFERENCES)
    assert node.status() == "hellogrp 2 FAILED\n"
