"""cltab.example works as the README says: from a checkout, no root, no /var/run."""

import os
import shutil
import sys

from daemon_rig import CHECKOUT, CLINIT, marked_pids, wait_for


def test_example_cltab(node, monkeypatch):
    monkeypatch.chdir(node.dir)  # its relative paths are the daemon's and our directory's
    shutil.copy(os.path.join(CHECKOUT, "cltab.example"), os.path.join(node.dir, "cltab.example"))
    node.cltab = os.path.join(node.dir, "cltab.example")
    node.socket = os.path.join(node.dir, "run", "clinit.s")
    node.start([sys.executable, CLINIT, "-c", "cltab.example", "-d"])
    result = node.clinit("-w", "demo", "up")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("demo up DONE\n")
    assert open(os.path.join(node.dir, "run", "clstat")).read() == "Cluster::Init::Group demo up DONE\n"
    ticks = os.path.join(node.dir, "run", "demo.ticker.log")  # not a terminal: its own file beside the log
    wait_for(lambda: os.path.exists(ticks) and os.path.getsize(ticks) > 0, what="the ticker")
    assert node.clinit("--output", "-n", "1", "demo", "ticker").stdout == open(ticks).read().splitlines(True)[-1]
    assert node.clinit("-w", "batch", "t").stdout.endswith("batch t PASSED\n")
    assert node.clinit("-w", "demo", "down").returncode == 0
    assert node.clinit("-k", "-w", "-t", "30").returncode == 0
    node.daemon.wait(10)
    assert marked_pids(node.mark) == []
