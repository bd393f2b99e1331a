"""Port of 08daemon.t: shutdown through a client ends the daemon."""

import os

from daemon_rig import marked_pids, wait_for


def test_shutdown(node):
    node.start()
    assert os.path.exists(node.clstat)
    assert node.shutdown() == "all groups halting"
    assert node.daemon.returncode == 0
    assert not os.path.exists(node.socket), "socket removed"
    assert not os.path.exists(node.clstat), "clstat removed"


def test_shutdown_stops_every_child(node):
    node.start()
    node.settle("pidgrp", "1")
    node.tell("bazgrp", "1")
    wait_for(lambda: len(marked_pids(node.mark)) >= 3, what="the daemon and two groups' commands")
    node.shutdown()
    assert marked_pids(node.mark) == [], "no child outlives the daemon"


def test_sigterm_halts_and_exits(node):
    import signal

    node.start()
    node.settle("pidgrp", "1")
    node.daemon.send_signal(signal.SIGTERM)
    node.daemon.wait(20)
    assert node.daemon.returncode == 0
    assert marked_pids(node.mark) == []
    assert "shutting down (signal SIGTERM)" in node.log_text()
