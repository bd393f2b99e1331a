"""A root daemon against what others plant, forge or leave open (issue 17, the daemon's side).

Each test is one of the issue's reproductions, with a real daemon and real
children in a per-test directory: a crash that leaves a stale level mark,
forged marks, a planted clstat, FIFOs where files should be, symlinks
swapped in on the way, descriptors the daemon was started with.  Tests
that act as another user (user nobody) need root and skip otherwise.
"""

import os
import signal

from daemon_rig import settings, tagged, wait_for
from realproc import alive


def kill_daemon(node):
    node.daemon.send_signal(signal.SIGKILL)
    node.daemon.wait(10)


# ---------------------------------------------------------------- item 7: a stale level mark

def test_an_entry_kept_across_a_tell_is_adopted_at_the_level_clstat_recorded(node):
    node.write_cltab(settings(node) + "s:svc:12:respawn:exec sleep 1000\n")
    node.start()
    assert node.settle("s", "1") == "DONE"
    (svc,) = wait_for(lambda: tagged(node, "svc"), what="svc")
    assert node.settle("s", "2") == "DONE"
    assert tagged(node, "svc") == [svc], "svc runs on, its mark still says level 1"
    assert open(node.clstat).read() == "Cluster::Init::Group s 2 DONE\n"
    kill_daemon(node)
    node.start()
    wait_for(lambda: "group s restored at level" in node.log_text(), what="the restore")
    assert "group s restored at level 2 DONE" in node.log_text()
    assert node.status(group="s") == "2 DONE\n"
    assert alive(svc) and tagged(node, "svc") == [svc], "adopted, not stopped"
    assert node.clinit("-w", "s", "2").stdout == "s 2 DONE\n"
